//! Executing a flow's program: the nodes in order, into branches and loops, each executed node
//! recorded under its path (`check.then.project`, `each[3].task`). A resumed run walks the same
//! way, taking every settled record as it stands (an action is never performed twice, a
//! decision never taken again), so it carries on at the first unfinished node, in a loop at
//! the unfinished item.
//!
//! Records are saved before each action that follows a finished one, so what was done is
//! durable before anything else is done; decisions in between ride along (they come out the
//! same when evaluated again). The run's end writes everything at once.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value, json};
use timix_engine::access::auth::Actor;
use timix_engine::automation::flows::condition::{Condition, Evaluation};
use timix_engine::automation::flows::program::{
    ActionNode, MAX_DELAY_MS, MAX_EXECUTED, Node, NodeKind, OnError, StopStatus, SwitchMode, Wait,
};
use timix_engine::automation::flows::{self, LiveFlow};
use timix_engine::automation::runs::{self, ClaimedRun, StepRecord, StepStatus};
use timix_engine::error::Result;
use timix_engine::store::clock::{Millis, format_ms, now_ms, parse_instant};

use super::FlowExecutor;
use super::step::{ActionCall, Performed, render};

/// How a run's walk ended.
#[derive(Debug)]
pub(super) enum End {
    /// Every node done, or a `stop` that succeeds.
    Succeeded,
    Failed(String),
    /// A `filter` was false.
    Filtered,
    /// An action failed in a way worth another attempt, then.
    RetryAt(Millis),
    /// At a `delay`, until then.
    WaitUntil(Millis),
    /// Another worker took the run over: this one stops writing.
    TakenOver,
}

/// What executing a node leads to.
enum Next {
    /// The next node of the block.
    Go,
    /// The rest of the block is skipped (an error branch ran instead).
    BlockDone,
    End(End),
}

/// The node being executed, and where: its record's path and its definition's.
struct Here<'n> {
    node: &'n Node,
    path: String,
    definition: String,
}

/// What a block's nodes see: earlier outputs by key, and the loop item they run for.
#[derive(Debug, Clone, Default)]
struct Scope {
    steps: Map<String, Value>,
    item: Option<(Value, usize)>,
}

/// Where a block is: the path prefix of its records and of its definition (for messages).
#[derive(Debug, Clone)]
struct At {
    path: String,
    definition: String,
}

impl At {
    fn node(&self, i: usize, key: &str) -> (String, String) {
        (
            format!("{}{key}", self.path),
            format!("{}[{i}]", self.definition),
        )
    }
}

/// Records a run may have and still save them all in its row at each save; a run with more (a
/// loop, mostly) appends what changed instead, so that saving does not grow with its length.
const REWRITTEN_UP_TO: usize = 32;

type Walked<'w> = Pin<Box<dyn Future<Output = Result<Next>> + Send + 'w>>;

pub(super) struct Walk<'e> {
    pub exec: &'e FlowExecutor,
    pub flow: &'e LiveFlow,
    pub run: &'e ClaimedRun,
    pub actor: &'e Actor,
    /// Every record of the run, in the order first reached.
    pub records: Vec<StepRecord>,
    index: HashMap<String, usize>,
    /// Records changed since the last save, by position.
    unsaved: Vec<usize>,
    /// Whether one of them is a finished action (then it is saved before the next action).
    unsaved_action: bool,
    /// The number of the last save.
    pub saves: i64,
    executed: usize,
}

impl<'e> Walk<'e> {
    pub fn new(
        exec: &'e FlowExecutor,
        flow: &'e LiveFlow,
        run: &'e ClaimedRun,
        actor: &'e Actor,
    ) -> Self {
        let records = run.steps.clone();
        let index = records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.path.clone(), i))
            .collect();
        Walk {
            exec,
            flow,
            run,
            actor,
            records,
            index,
            unsaved: Vec::new(),
            unsaved_action: false,
            saves: run.saves,
            executed: 0,
        }
    }

    /// Walks the whole program.
    pub async fn run(&mut self) -> Result<End> {
        let flow = self.flow;
        let at = At {
            path: String::new(),
            definition: "steps".into(),
        };
        // A step tested alone starts from the outputs and loop item it was given.
        let mut scope = match self.run.test.as_ref().and_then(|t| t.context.as_ref()) {
            Some(given) => Scope {
                steps: given.steps.clone(),
                item: given
                    .item
                    .clone()
                    .map(|item| (item, given.index.unwrap_or(0))),
            },
            None => Scope::default(),
        };
        Ok(match self.block(&flow.program, &mut scope, at).await? {
            Next::Go | Next::BlockDone => End::Succeeded,
            Next::End(end) => end,
        })
    }

    /// Whether this is a dry run: actions are not performed, delays not waited for.
    pub(super) fn dry_run(&self) -> bool {
        self.run.test.as_ref().is_some_and(|t| t.dry_run)
    }

    pub(super) fn record(&self, path: &str) -> Option<&StepRecord> {
        self.index.get(path).map(|&i| &self.records[i])
    }

    pub(super) fn put(&mut self, record: StepRecord) {
        let i = match self.index.get(&record.path) {
            Some(&i) => {
                self.records[i] = record;
                i
            }
            None => {
                self.index.insert(record.path.clone(), self.records.len());
                self.records.push(record);
                self.records.len() - 1
            }
        };
        if self.records[i].node == "action" && self.records[i].status.is_settled() {
            self.unsaved_action = true;
        }
        if !self.unsaved.contains(&i) {
            self.unsaved.push(i);
        }
    }

    /// Saves what changed, if a finished action is among it. False when the run was taken over.
    async fn save_before_action(&mut self) -> Result<bool> {
        if !self.unsaved_action {
            return Ok(true);
        }
        let lease_ms = self.exec.lease.as_millis() as i64;
        let held = if self.saves == 0 && self.records.len() <= REWRITTEN_UP_TO {
            // A short run rewrites its records in its row: one statement, committed with
            // others waiting at the same time.
            runs::save_all_steps(&self.exec.db, self.run, &self.records, lease_ms).await?
        } else {
            let changed: Vec<StepRecord> = self
                .unsaved
                .iter()
                .map(|&i| self.records[i].clone())
                .collect();
            let seq = self.saves + 1;
            let held = runs::save_steps(&self.exec.db, self.run, &changed, seq, lease_ms).await?;
            if held {
                self.saves = seq;
            }
            held
        };
        if !held {
            return Ok(false);
        }
        self.unsaved.clear();
        self.unsaved_action = false;
        Ok(true)
    }

    /// What templates see at this point.
    fn context(&self, scope: &Scope) -> Value {
        let mut context = json!({
            "trigger": self.run.trigger,
            "steps": scope.steps,
            "flow": flows::context_of(self.flow),
            "now": format_ms(now_ms()),
        });
        if let Some((item, index)) = &scope.item {
            context["item"] = item.clone();
            context["index"] = json!(index);
        }
        context
    }

    fn block<'w>(&'w mut self, nodes: &'w [Node], scope: &'w mut Scope, at: At) -> Walked<'w> {
        Box::pin(async move {
            for (i, node) in nodes.iter().enumerate() {
                self.executed += 1;
                if self.executed > MAX_EXECUTED {
                    return Ok(Next::End(End::Failed(format!(
                        "the run reached {MAX_EXECUTED} executed steps, the most one run may execute"
                    ))));
                }
                let (path, definition) = at.node(i, &node.key);
                match self.node(node, scope, path, definition).await? {
                    Next::Go => {}
                    Next::BlockDone => return Ok(Next::Go),
                    end @ Next::End(_) => return Ok(end),
                }
            }
            Ok(Next::Go)
        })
    }

    pub(super) fn new_record(node: &Node, path: &str) -> StepRecord {
        StepRecord {
            key: node.key.clone(),
            path: path.to_owned(),
            node: node.type_name().into(),
            action: match &node.kind {
                NodeKind::Action(a) => a.action.clone(),
                _ => String::new(),
            },
            status: StepStatus::Pending,
            input: None,
            output: None,
            error: None,
            attempts: 0,
            started_at: Some(format_ms(now_ms())),
            finished_at: None,
        }
    }

    /// Records a control node as done with `output`.
    fn settle(&mut self, node: &Node, path: &str, status: StepStatus, output: Value) {
        let mut record = self
            .record(path)
            .cloned()
            .unwrap_or_else(|| Self::new_record(node, path));
        record.status = status;
        record.output = Some(output);
        record.finished_at = Some(format_ms(now_ms()));
        self.put(record);
    }

    /// Fails a node that is not an action (a condition that cannot be evaluated, a loop over
    /// something that is not a list…): recorded failed, and the run fails.
    fn node_failed(&mut self, node: &Node, path: &str, code: &str, message: String) -> Next {
        let mut record = self
            .record(path)
            .cloned()
            .unwrap_or_else(|| Self::new_record(node, path));
        record.status = StepStatus::Failed;
        record.error = Some(json!({"code": code, "message": message}));
        record.finished_at = Some(format_ms(now_ms()));
        self.put(record);
        Next::End(End::Failed(format!(
            "step {path} ({}) failed: {message}",
            node.type_name()
        )))
    }

    async fn evaluate(
        &self,
        condition: &Condition,
        scope: &Scope,
    ) -> std::result::Result<Evaluation, String> {
        let context = self.context(scope);
        if !condition.needs_engine() {
            return condition.evaluate(&context);
        }
        // Helpers and blocks run off the async workers (see `render`).
        let condition = condition.clone();
        tokio::task::spawn_blocking(move || condition.evaluate(&context))
            .await
            .unwrap_or_else(|_| Err("the condition could not be evaluated".into()))
    }

    async fn node(
        &mut self,
        node: &Node,
        scope: &mut Scope,
        path: String,
        definition: String,
    ) -> Result<Next> {
        let settled = self
            .record(&path)
            .filter(|r| r.status.is_settled() && r.status != StepStatus::Failed)
            .cloned();
        match &node.kind {
            NodeKind::Action(action) => {
                let here = Here {
                    node,
                    path,
                    definition,
                };
                self.action(&here, action, scope, settled).await
            }
            NodeKind::Filter { condition } => {
                let passed = match settled {
                    Some(record) => record.output.as_ref().is_some_and(|o| o["result"] == true),
                    None => match self.evaluate(condition, scope).await {
                        Ok(e) => {
                            self.settle(
                                node,
                                &path,
                                StepStatus::Succeeded,
                                json!({"result": e.result, "leaves": e.trace}),
                            );
                            e.result
                        }
                        Err(message) => {
                            return Ok(self.node_failed(node, &path, "condition", message));
                        }
                    },
                };
                Ok(if passed {
                    Next::Go
                } else {
                    Next::End(End::Filtered)
                })
            }
            NodeKind::If {
                condition,
                then,
                otherwise,
            } => {
                let taken = match settled {
                    Some(record) => record.output.as_ref().is_some_and(|o| o["result"] == true),
                    None => {
                        match self.evaluate(condition, scope).await {
                            Ok(e) => {
                                let branch = if e.result {
                                    json!("then")
                                } else if otherwise.is_empty() {
                                    Value::Null
                                } else {
                                    json!("else")
                                };
                                self.settle(node, &path, StepStatus::Succeeded, json!({"result": e.result, "branch": branch, "leaves": e.trace}));
                                e.result
                            }
                            Err(message) => {
                                return Ok(self.node_failed(node, &path, "condition", message));
                            }
                        }
                    }
                };
                let (block, name) = if taken {
                    (then, "then")
                } else {
                    (otherwise, "else")
                };
                let at = At {
                    path: format!("{path}.{name}."),
                    definition: format!("{definition}.{name}"),
                };
                self.block(block, scope, at).await
            }
            NodeKind::Switch {
                mode,
                cases,
                default,
            } => {
                let matched: Vec<String> = match settled {
                    Some(record) => record
                        .output
                        .as_ref()
                        .and_then(|o| o["matched"].as_array().cloned())
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|m| m.as_str().map(str::to_owned))
                        .collect(),
                    None => {
                        let mut matched = Vec::new();
                        for case in cases {
                            match self.evaluate(&case.condition, scope).await {
                                Ok(e) if e.result => {
                                    matched.push(case.name.clone());
                                    if *mode == SwitchMode::First {
                                        break;
                                    }
                                }
                                Ok(_) => {}
                                Err(message) => {
                                    let message = format!("case {}: {message}", case.name);
                                    return Ok(self.node_failed(node, &path, "condition", message));
                                }
                            }
                        }
                        if matched.is_empty() && default.is_some() {
                            matched.push("default".into());
                        }
                        self.settle(
                            node,
                            &path,
                            StepStatus::Succeeded,
                            json!({"matched": matched}),
                        );
                        matched
                    }
                };
                for name in matched {
                    let (block, definition) = match cases.iter().position(|c| c.name == name) {
                        Some(c) => (&cases[c].steps, format!("{definition}.cases[{c}].steps")),
                        None => match default {
                            Some(block) => (block, format!("{definition}.default")),
                            None => continue,
                        },
                    };
                    let at = At {
                        path: format!("{path}.{name}."),
                        definition,
                    };
                    if let end @ Next::End(_) = self.block(block, scope, at).await? {
                        return Ok(end);
                    }
                }
                Ok(Next::Go)
            }
            NodeKind::ForEach {
                items,
                steps,
                max_items,
            } => {
                if let Some(record) = settled {
                    scope
                        .steps
                        .insert(node.key.clone(), record.output.unwrap_or(Value::Null));
                    return Ok(Next::Go);
                }
                let list = match render(
                    items.clone(),
                    self.context(scope),
                    format!("{definition}.items"),
                )
                .await
                {
                    Ok(Value::Array(list)) => list,
                    Ok(other) => {
                        let message =
                            format!("items must give a list; it gave {}", describe(&other));
                        return Ok(self.node_failed(node, &path, "invalid_items", message));
                    }
                    Err((field, e)) => {
                        return Ok(self.node_failed(
                            node,
                            &path,
                            "template",
                            format!("{field}: {}", e.0),
                        ));
                    }
                };
                if list.len() > *max_items {
                    let message = format!(
                        "items gave {} items; this loop takes at most {max_items} (maxItems)",
                        list.len()
                    );
                    return Ok(self.node_failed(node, &path, "too_many_items", message));
                }
                if self.record(&path).is_none() {
                    let mut record = Self::new_record(node, &path);
                    record.input = Some(json!({"count": list.len()}));
                    self.put(record);
                }
                let mut outputs = Vec::with_capacity(list.len());
                for (index, item) in list.into_iter().enumerate() {
                    let mut inner = Scope {
                        steps: scope.steps.clone(),
                        item: Some((item, index)),
                    };
                    let at = At {
                        path: format!("{path}[{index}]."),
                        definition: format!("{definition}.steps"),
                    };
                    if let end @ Next::End(_) = self.block(steps, &mut inner, at).await? {
                        return Ok(end);
                    }
                    // The item's own outputs: what its steps added to what the loop saw.
                    let own: Map<String, Value> = inner
                        .steps
                        .into_iter()
                        .filter(|(key, _)| !scope.steps.contains_key(key))
                        .collect();
                    outputs.push(Value::Object(own));
                }
                let output = json!({"items": outputs});
                self.settle(node, &path, StepStatus::Succeeded, output.clone());
                scope.steps.insert(node.key.clone(), output);
                Ok(Next::Go)
            }
            NodeKind::Set { values } => {
                let output = match settled {
                    Some(record) => record.output.unwrap_or(Value::Null),
                    None => match render(
                        Value::Object(values.clone()),
                        self.context(scope),
                        format!("{definition}.values"),
                    )
                    .await
                    {
                        Ok(output) => {
                            self.settle(node, &path, StepStatus::Succeeded, output.clone());
                            output
                        }
                        Err((field, e)) => {
                            return Ok(self.node_failed(
                                node,
                                &path,
                                "template",
                                format!("{field}: {}", e.0),
                            ));
                        }
                    },
                };
                scope.steps.insert(node.key.clone(), output);
                Ok(Next::Go)
            }
            NodeKind::Delay(wait) => {
                if settled.is_some() {
                    return Ok(Next::Go);
                }
                let now = now_ms();
                let until = match self
                    .record(&path)
                    .and_then(|r| r.output.as_ref())
                    .and_then(|o| o["until"].as_str())
                    .and_then(parse_instant)
                {
                    Some(until) => until,
                    None => match self.until(wait, scope, &definition, now).await {
                        Ok(until) => until,
                        Err(message) => {
                            return Ok(self.node_failed(node, &path, "invalid_delay", message));
                        }
                    },
                };
                if until <= now || self.dry_run() {
                    // A dry run shows until when it would wait, and goes on.
                    let mut output = json!({"until": format_ms(until)});
                    if until > now {
                        output["dryRun"] = json!(true);
                    }
                    self.settle(node, &path, StepStatus::Succeeded, output);
                    return Ok(Next::Go);
                }
                let mut record = self
                    .record(&path)
                    .cloned()
                    .unwrap_or_else(|| Self::new_record(node, &path));
                record.output = Some(json!({"until": format_ms(until)}));
                self.put(record);
                Ok(Next::End(End::WaitUntil(until)))
            }
            NodeKind::Stop { status, message } => {
                let message = match message {
                    None => None,
                    Some(m) => match render(
                        m.clone(),
                        self.context(scope),
                        format!("{definition}.message"),
                    )
                    .await
                    {
                        Ok(m) => Some(m.as_str().map_or_else(|| m.to_string(), str::to_owned)),
                        Err((field, e)) => Some(format!("{field}: {}", e.0)),
                    },
                };
                let failed = *status == StopStatus::Failed;
                let mut record = self
                    .record(&path)
                    .cloned()
                    .unwrap_or_else(|| Self::new_record(node, &path));
                record.status = if failed {
                    StepStatus::Failed
                } else {
                    StepStatus::Succeeded
                };
                record.output = Some(
                    json!({"status": if failed { "failed" } else { "succeeded" }, "message": message}),
                );
                record.finished_at = Some(format_ms(now_ms()));
                self.put(record);
                Ok(Next::End(if failed {
                    End::Failed(message.unwrap_or_else(|| format!("stopped at step {path}")))
                } else {
                    End::Succeeded
                }))
            }
        }
    }

    /// When a delay ends: `for` after now, or `until` rendered (at most 30 days ahead).
    async fn until(
        &self,
        wait: &Wait,
        scope: &Scope,
        definition: &str,
        now: Millis,
    ) -> std::result::Result<Millis, String> {
        let until = match wait {
            Wait::For(ms) => now + ms,
            Wait::Until(template) => {
                let value = render(
                    template.clone(),
                    self.context(scope),
                    format!("{definition}.until"),
                )
                .await
                .map_err(|(field, e)| format!("{field}: {}", e.0))?;
                value.as_str().and_then(parse_instant).ok_or_else(|| {
                    format!(
                        "until must give an instant such as 2026-12-24T09:00:00Z; it gave {}",
                        describe(&value)
                    )
                })?
            }
        };
        if until > now + MAX_DELAY_MS {
            return Err(format!(
                "until is {} away; a delay waits at most 30 days",
                format_ms(until)
            ));
        }
        Ok(until)
    }

    async fn action(
        &mut self,
        here: &Here<'_>,
        action: &ActionNode,
        scope: &mut Scope,
        settled: Option<StepRecord>,
    ) -> Result<Next> {
        let Here {
            node,
            path,
            definition,
        } = here;
        if let Some(record) = settled {
            let seen = match record.status {
                StepStatus::Continued => json!({"error": record.error}),
                _ => record.output.clone().unwrap_or(Value::Null),
            };
            scope.steps.insert(node.key.clone(), seen);
            return match (&record.status, &action.on_error) {
                // Resumed inside (or just before) the error branch.
                (StepStatus::Continued, OnError::Steps(branch)) => {
                    self.error_branch(branch, scope, path, definition).await
                }
                _ => Ok(Next::Go),
            };
        }
        if !self.save_before_action().await? {
            return Ok(Next::End(End::TakenOver));
        }
        let context = self.context(scope);
        let performed = self
            .perform(
                node,
                path,
                ActionCall {
                    action: &action.action,
                    connector: action.connector.as_deref(),
                    connection_id: action.connection_id.as_deref(),
                    input: &action.input,
                    at: format!("{definition}.input"),
                },
                context.clone(),
            )
            .await?;
        let output = match performed {
            Performed::Done(output) => output,
            Performed::Retry(at) => return Ok(Next::End(End::RetryAt(at))),
            Performed::Failed(error) => {
                return self.action_failed(here, action, scope, error).await;
            }
        };
        let output = match &action.or_create {
            Some(create) if is_nothing(&output) => {
                // Not done until the creation is: a resumed run searches again, then creates.
                if let Some(mut search) = self.record(path).cloned() {
                    search.status = StepStatus::Pending;
                    self.put(search);
                }
                let create_path = format!("{path}.orCreate");
                let created = match self
                    .record(&create_path)
                    .filter(|r| r.status == StepStatus::Succeeded)
                {
                    Some(record) => record.output.clone().unwrap_or(Value::Null),
                    None => {
                        let performed = self
                            .perform(
                                node,
                                &create_path,
                                ActionCall {
                                    action: &create.action,
                                    connector: action.connector.as_deref(),
                                    connection_id: action.connection_id.as_deref(),
                                    input: &create.input,
                                    at: format!("{definition}.orCreate.input"),
                                },
                                context,
                            )
                            .await?;
                        match performed {
                            Performed::Done(output) => output,
                            Performed::Retry(at) => return Ok(Next::End(End::RetryAt(at))),
                            Performed::Failed(error) => {
                                return self.action_failed(here, action, scope, error).await;
                            }
                        }
                    }
                };
                with_created(created, true)
            }
            Some(_) => with_created(output, false),
            None => output,
        };
        if let Some(mut record) = self.record(path).cloned() {
            record.status = StepStatus::Succeeded;
            record.output = Some(output.clone());
            self.put(record);
        }
        scope.steps.insert(node.key.clone(), output);
        Ok(Next::Go)
    }

    /// An action failed for good: the run fails, goes on past it, or takes its error branch.
    async fn action_failed(
        &mut self,
        here: &Here<'_>,
        action: &ActionNode,
        scope: &mut Scope,
        error: Value,
    ) -> Result<Next> {
        let Here {
            node,
            path,
            definition,
        } = here;
        let mut record = self
            .record(path)
            .cloned()
            .unwrap_or_else(|| Self::new_record(node, path));
        record.error = Some(error.clone());
        record.finished_at = Some(format_ms(now_ms()));
        record.status = match action.on_error {
            OnError::Fail => StepStatus::Failed,
            _ => StepStatus::Continued,
        };
        self.put(record);
        match &action.on_error {
            OnError::Fail => Ok(Next::End(End::Failed(format!(
                "step {path} ({}) failed: {}",
                action.action,
                error["message"].as_str().unwrap_or("error")
            )))),
            OnError::Continue => {
                scope
                    .steps
                    .insert(node.key.clone(), json!({"error": error}));
                Ok(Next::Go)
            }
            OnError::Steps(branch) => {
                scope
                    .steps
                    .insert(node.key.clone(), json!({"error": error}));
                self.error_branch(branch, scope, path, definition).await
            }
        }
    }

    async fn error_branch(
        &mut self,
        branch: &[Node],
        scope: &mut Scope,
        path: &str,
        definition: &str,
    ) -> Result<Next> {
        let at = At {
            path: format!("{path}.onError."),
            definition: format!("{definition}.onError.steps"),
        };
        Ok(match self.block(branch, scope, at).await? {
            end @ Next::End(_) => end,
            _ => Next::BlockDone,
        })
    }
}

/// A search that found nothing: null, or an empty list.
fn is_nothing(output: &Value) -> bool {
    match output {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// A find-or-create's output: the record found or created, with `created`.
fn with_created(mut output: Value, created: bool) -> Value {
    match &mut output {
        Value::Object(map) => {
            map.insert("created".into(), json!(created));
            output
        }
        _ => json!({"value": output, "created": created}),
    }
}

/// A value named in a message: its type and a short view of it.
fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    let mut text = value.to_string();
    if text.len() > 80 {
        text.truncate(text.floor_char_boundary(80));
        text.push('…');
    }
    format!("{kind} ({text})")
}
