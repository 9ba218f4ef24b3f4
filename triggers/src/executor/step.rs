//! One attempt of an action node: its input rendered from what the node sees and checked
//! against the action's schema, its connection opened, the action performed as the flow's
//! owner, and the attempt recorded.

use serde_json::{Value, json};
use std::sync::Arc;
use timix_actions::ActionResult;
use timix_engine::automation::connections::{self, Resolved};
use timix_engine::automation::flows::program::Node;

use timix_engine::automation::connectors::Loaded;
use timix_engine::automation::manifest::{ActionManifest, Manifests};
use timix_engine::automation::runs::StepStatus;
use timix_engine::automation::template;
use timix_engine::error::Result;
use timix_engine::store::clock::{Millis, format_ms, now_ms};
use timix_engine::store::events;

use super::walk::Walk;
use super::{backoff, failure};

/// How an attempt went.
pub(super) enum Performed {
    Done(Value),
    /// Another attempt is due then.
    Retry(Millis),
    /// Failed for good, with the error (`{code, message, …}`).
    Failed(Value),
}

/// Where an action's manifest comes from: timix's own, or the version of a connector the flow
/// was saved with.
enum Source<'m> {
    Timix(&'m Manifests),
    Connector(Arc<Loaded>),
}

impl Source<'_> {
    fn manifests(&self) -> &Manifests {
        match self {
            Source::Timix(m) => m,
            Source::Connector(loaded) => &loaded.manifests,
        }
    }
}

/// An action ready to be performed.
struct Prepared<'m> {
    source: Source<'m>,
    key: String,
    input: Value,
    connection: Option<Resolved>,
}

impl Prepared<'_> {
    fn action(&self) -> &ActionManifest {
        // Present: `prepare` found it.
        &self.source.manifests().actions[&self.key]
    }
}

/// One action to attempt: which manifest, through which connection, with which input template.
pub(super) struct ActionCall<'a> {
    pub action: &'a str,
    /// The connector version the flow was saved with, for a connector's action.
    pub connector: Option<&'a str>,
    pub connection_id: Option<&'a str>,
    pub input: &'a Value,
    /// Where the input is defined (`steps[2].then[0].input`), for messages.
    pub at: String,
}

impl<'e> Walk<'e> {
    /// Attempts `call` once for the node at `path`, recording the attempt there.
    pub(super) async fn perform(
        &mut self,
        node: &Node,
        path: &str,
        call: ActionCall<'_>,
        context: Value,
    ) -> Result<Performed> {
        let mut record = self
            .record(path)
            .cloned()
            .unwrap_or_else(|| Walk::new_record(node, path));
        call.action.clone_into(&mut record.action);
        let prepared = match self.prepare(&call, context, &mut record.input).await? {
            Ok(prepared) => prepared,
            Err(error) => {
                self.put(record);
                return Ok(Performed::Failed(error));
            }
        };
        record.attempts += 1;
        record.started_at = Some(format_ms(now_ms()));
        let max_attempts = prepared.action().retry.max_attempts;
        let result = match self.dry_output(&node.key, prepared.action()) {
            Some(output) => ActionResult::Done(output),
            None => self.attempt(prepared).await,
        };
        let performed = match result {
            ActionResult::Done(output) => {
                record.status = StepStatus::Succeeded;
                record.error = None;
                record.finished_at = Some(format_ms(now_ms()));
                record.output = Some(output.clone());
                Performed::Done(output)
            }
            ActionResult::Retry { error, after } if record.attempts < max_attempts => {
                record.error = Some(error);
                let wait = backoff(self.exec.retry_base, record.attempts, after);
                Performed::Retry(now_ms() + wait.as_millis() as i64)
            }
            ActionResult::Retry { error, .. } | ActionResult::Fail(error) => {
                Performed::Failed(error)
            }
        };
        self.put(record);
        Ok(performed)
    }

    /// Readies an action: its manifest, its input rendered from `context` and checked against
    /// the manifest's schema (kept in `recorded`, also when it is refused), and its connection.
    /// A refusal is the error the node fails with.
    async fn prepare(
        &self,
        call: &ActionCall<'_>,
        context: Value,
        recorded: &mut Option<Value>,
    ) -> Result<std::result::Result<Prepared<'e>, Value>> {
        let exec: &'e super::FlowExecutor = self.exec;
        let source = match (
            exec.manifests.actions.contains_key(call.action),
            call.connector,
        ) {
            (true, _) => Source::Timix(&exec.manifests),
            (false, Some(version)) => {
                match exec
                    .connectors
                    .version(&exec.db, &self.flow.org_id, version)
                    .await?
                {
                    Some(loaded) => Source::Connector(loaded),
                    None => {
                        let message = format!("the connector version {version} is gone");
                        return Ok(Err(failure("unknown_manifest", &message)));
                    }
                }
            }
            (false, None) => {
                let message = format!("{} is no longer an action", call.action);
                return Ok(Err(failure("unknown_manifest", &message)));
            }
        };
        let manifests = source.manifests();
        let Some(action) = manifests.actions.get(call.action) else {
            let message = format!("{} is no longer an action", call.action);
            return Ok(Err(failure("unknown_manifest", &message)));
        };
        let mut input = match render(call.input.clone(), context, call.at.clone()).await {
            Ok(input) => input,
            Err((path, e)) => {
                return Ok(Err(
                    json!({"code": "template", "message": format!("{path}: {}", e.0), "field": path}),
                ));
            }
        };
        manifests.coerce_input(&action.key, &mut input);
        *recorded = Some(input.clone());
        if let Err(problems) = manifests.check_input(&action.key, &input) {
            let details: Vec<Value> = problems
                .iter()
                .map(|(path, message)| json!({"field": path, "message": message}))
                .collect();
            return Ok(Err(json!({
                "code": "invalid_input",
                "message": format!("the input does not match {}: {}", action.key, problems[0].1),
                "details": details,
            })));
        }
        let connection = match call.connection_id {
            None => None,
            Some(id) => {
                match connections::resolve(&self.exec.db, &self.exec.vault, &self.flow.org_id, id)
                    .await?
                {
                    Some(c) => Some(c),
                    None => {
                        return Ok(Err(failure(
                            "connection_not_found",
                            format!("the connection {id} was deleted"),
                        )));
                    }
                }
            }
        };
        let key = action.key.clone();
        Ok(Ok(Prepared {
            source,
            key,
            input,
            connection,
        }))
    }

    /// In a test, what an action gives without being performed: the output pinned for its
    /// step; in a dry run, else its manifest's sample.
    fn dry_output(&self, key: &str, action: &ActionManifest) -> Option<Value> {
        let test = self.run.test.as_ref()?;
        match test.pinned.get(key) {
            Some(pinned) => Some(pinned.clone()),
            None => test.dry_run.then(|| action.sample.clone()),
        }
    }

    /// One attempt of a readied action, as the flow's owner; the changes it makes are this
    /// flow's, one level deeper in a chain.
    async fn attempt(&self, step: Prepared<'e>) -> ActionResult {
        let cause = events::Cause {
            flow_id: self.flow.id.clone(),
            depth: self.run.depth + 1,
            root: self.run.root.clone(),
        };
        events::CAUSE
            .scope(
                cause,
                self.exec.performer.perform(
                    timix_actions::Caller {
                        this: &*self.exec.this_instance,
                        actor: self.actor,
                    },
                    step.action(),
                    &step.input,
                    step.connection.as_ref(),
                ),
            )
            .await
    }
}

/// Renders templates (an input, a loop's items, a `set`'s values). Templates that run the
/// engine (loops, conditions, helpers) render on the blocking pool, never on the async
/// workers: within their budget they are bounded, but not free, and other organizations'
/// requests share those workers.
pub(super) async fn render(
    value: Value,
    context: Value,
    at: String,
) -> std::result::Result<Value, (String, template::TemplateError)> {
    if !template::needs_engine(&value) {
        return template::render_value(&value, &context, &at);
    }
    let render_at = at.clone();
    tokio::task::spawn_blocking(move || template::render_value(&value, &context, &render_at))
        .await
        .unwrap_or_else(|_| {
            Err((
                at,
                template::TemplateError("the template could not be rendered".into()),
            ))
        })
}
