//! The builder's page context for the tree of nodes: each node with its number ("2.1"), its
//! heading in words, its fields and errors, the data it can use, and its lists of nodes
//! (`then`, `else`, a path's steps, a loop's steps, an error branch), each ending with the
//! buttons that add to it. The tree is handed to the page as a flat sequence of start and end
//! items, so that the page's template renders it without nesting templates, however deep it is
//! (the walk here recurses once per level, which a form's paths bound).

use serde_json::{Value, json};

use super::tree::{self, Condition, Node, NodeKind};
use super::{Builder, Marks, Panel, data, plain};

/// The page's sequence of tree items as it is made, with the data the next node can use and
/// the fields shown so far.
pub struct Walk<'w, 'e> {
    pub items: Vec<Value>,
    pub panel: &'w mut Panel,
    pub marks: &'w mut Marks<'e>,
}

/// Where a node is: its field path, its element id and its number.
pub struct At<'p> {
    pub path: &'p str,
    pub id: &'p str,
    pub number: &'p str,
}

/// The kinds the "Add" buttons offer.
pub fn add_kinds() -> Vec<Value> {
    NodeKind::ADDABLE
        .iter()
        .filter(|k| **k != NodeKind::Action)
        .map(|k| json!({"value": k.as_str(), "label": k.label()}))
        .collect()
}

impl Builder<'_> {
    /// A list of nodes (`steps`, `steps[1].then`…) as the page's flat sequence of items: the
    /// list's start, each node's start, its lists, its end, and the list's end with the buttons
    /// that add to it. Flat, so that the page renders a deep tree without nesting templates.
    pub(super) fn push_list(
        &self,
        walk: &mut Walk<'_, '_>,
        list: (&str, &str),
        nodes: &[Node],
        numbering: &str,
    ) {
        let (list_path, label) = list;
        let marks = &mut *walk.marks;
        // A path's list is one level under its switch, as a branch is under its if.
        let depth = list_path.matches('[').count() - list_path.matches("cases[").count();
        marks.shown.insert(list_path.to_owned());
        let list = json!({
            "path": list_path,
            "id": tree::dom_id(list_path),
            "label": label,
            "root": depth == 0,
            "empty": nodes.is_empty(),
            "error": marks.errors.get(list_path).map(|m| plain::message(m)),
        });
        walk.items.push(json!({"listStart": list}));
        for (i, node) in nodes.iter().enumerate() {
            let path = format!("{list_path}[{i}]");
            let id = tree::dom_id(&path);
            let number = format!("{numbering}{}", i + 1);
            let at = At {
                path: &path,
                id: &id,
                number: &number,
            };
            let mut context = self.node_context(walk, &at, node, depth);
            context["canMoveUp"] = json!(i > 0);
            context["canMoveDown"] = json!(i + 1 < nodes.len());
            walk.items.push(json!({"nodeStart": context}));
            self.push_lists(walk, &at, node);
            walk.items.push(json!({"nodeEnd": true}));
        }
        walk.items.push(json!({"listEnd": list}));
    }

    /// The lists of a node: an if's `then` and `else`, a switch's paths and `default`, a loop's
    /// steps, an action's error branch.
    fn push_lists(&self, walk: &mut Walk<'_, '_>, at: &At<'_>, node: &Node) {
        let path = at.path;
        let numbering = format!("{}.", at.number);
        match node.kind {
            NodeKind::Action if node.on_error == "steps" => self.push_list(
                walk,
                (
                    &format!("{path}.onError.steps"),
                    &format!("Step {}: when it fails", at.number),
                ),
                &node.error_steps,
                &numbering,
            ),
            NodeKind::If => {
                let then = format!("{path}.then");
                let label = format!("Step {}: then", at.number);
                self.push_list(walk, (&then, &label), &node.then, &numbering);
                let otherwise = format!("{path}.else");
                // Numbered apart from Then's ("2.e1"), so that no two steps share a number.
                let label = format!("Step {}: else", at.number);
                let numbering = format!("{}.e", at.number);
                self.push_list(walk, (&otherwise, &label), &node.otherwise, &numbering);
            }
            NodeKind::ForEach => {
                walk.panel
                    .sections
                    .insert(0, data::loop_section(&node.items));
                let body = format!("{path}.steps");
                let label = format!("Step {}: for each item", at.number);
                self.push_list(walk, (&body, &label), &node.body, &numbering);
                walk.panel.sections.remove(0);
            }
            NodeKind::Switch => {
                for (i, case) in node.cases.iter().enumerate() {
                    let prefix = format!("{path}.cases[{i}]");
                    for part in [".name", ".condition", ".steps"] {
                        walk.marks.shown.insert(format!("{prefix}{part}"));
                    }
                    let id = format!("{}-c{i}", at.id);
                    let case_context = json!({
                        "index": i,
                        "number": i + 1,
                        "id": id,
                        "path": path,
                        "stepNumber": at.number,
                        "name": case.name,
                        "nameError": walk.marks.errors.get(&format!("{prefix}.name")).map(|m| plain::message(m)),
                        "condition": condition_context(&format!("{prefix}.condition"), &id, &case.condition, walk.marks),
                    });
                    walk.items.push(json!({"caseStart": case_context}));
                    let letter = case_letters(i);
                    self.push_list(
                        walk,
                        (
                            &format!("{prefix}.steps"),
                            &format!("Step {}: path “{}”", at.number, case.name),
                        ),
                        &case.steps,
                        &format!("{numbering}{letter}"),
                    );
                    walk.items.push(json!({"caseEnd": true}));
                }
                walk.items
                    .push(json!({"addCase": {"path": path, "id": at.id, "number": at.number}}));
                self.push_list(
                    walk,
                    (
                        &format!("{path}.default"),
                        &format!("Step {}: when no path matches", at.number),
                    ),
                    &node.default,
                    &numbering,
                );
            }
            _ => {}
        }
    }

    /// A node's own fields (its lists follow it in the page's sequence).
    fn node_context(
        &self,
        walk: &mut Walk<'_, '_>,
        at: &At<'_>,
        node: &Node,
        depth: usize,
    ) -> Value {
        let (panel, marks) = (&mut *walk.panel, &mut *walk.marks);
        let path = at.path;
        let errors = marks.errors;
        let error = |suffix: &str| {
            errors
                .get(&format!("{path}{suffix}"))
                .map(|m| plain::message(m))
        };
        for part in ["", ".key", ".type"] {
            marks.shown.insert(format!("{path}{part}"));
        }
        let mut context = match node.kind {
            NodeKind::Action => {
                let context = self.step_context(at, node, panel, marks);
                self.add_step_data(panel, at.number, node);
                context
            }
            _ => self.logic_context(at, node, panel, marks),
        };
        let mut is = serde_json::Map::new();
        is.insert(node.kind.as_str().to_owned(), Value::Bool(true));
        let heading = match node.kind {
            NodeKind::Action => context["manifest"]["label"]
                .as_str()
                .map_or_else(|| "Choose an action".to_owned(), str::to_owned),
            _ => node.describe(),
        };
        super::super::merge(
            &mut context,
            json!({
                "path": path,
                "id": at.id,
                "number": at.number,
                "level": (2 + depth).min(6),
                "is": is,
                "kind": node.kind.as_str(),
                "heading": heading,
                "key": node.key,
                "keyError": error(".key"),
                "error": error("").or_else(|| error(".type")),
            }),
        );
        context
    }

    /// The fields of a node that is not an action.
    fn logic_context(
        &self,
        at: &At<'_>,
        node: &Node,
        panel: &mut Panel,
        marks: &mut Marks<'_>,
    ) -> Value {
        let path = at.path;
        let errors = marks.errors;
        let error = |suffix: &str| {
            errors
                .get(&format!("{path}{suffix}"))
                .map(|m| plain::message(m))
        };
        let warnings = marks.warnings;
        let warning = |suffix: &str| warnings.get(&format!("{path}{suffix}")).cloned();
        let shown: &[&str] = match node.kind {
            NodeKind::Switch => &[".mode", ".cases", ".default"],
            NodeKind::ForEach => &[".items", ".maxItems", ".steps"],
            NodeKind::Set => &[".values"],
            NodeKind::Delay => &[".for", ".until"],
            NodeKind::Stop => &[".status", ".message"],
            NodeKind::Json => &[".json"],
            _ => &[".then", ".else"],
        };
        for part in shown {
            marks.shown.insert(format!("{path}{part}"));
        }
        let mut context = json!({"data": panel.sections.clone()});
        match node.kind {
            NodeKind::If | NodeKind::Filter => {
                context["condition"] =
                    condition_context(&format!("{path}.condition"), at.id, &node.condition, marks);
            }
            NodeKind::Switch => {
                context["modeOptions"] = json!([
                    {"value": "first", "label": "The first path that matches", "selected": node.mode != "all"},
                    {"value": "all", "label": "Every path that matches", "selected": node.mode == "all"},
                ]);
                context["modeError"] = json!(error(".mode"));
                context["casesError"] = json!(error(".cases"));
            }
            NodeKind::ForEach => {
                context["items"] = json!(node.items);
                context["itemsError"] = json!(error(".items"));
                context["itemsWarning"] = json!(warning(".items"));
                context["maxItems"] = json!(node.max_items);
                context["maxItemsError"] = json!(error(".maxItems"));
            }
            NodeKind::Set => {
                let mut rows: Vec<Value> = node
                    .values
                    .iter()
                    .enumerate()
                    .map(|(i, (name, value))| {
                        marks.shown.insert(format!("{path}.values.{name}"));
                        json!({"index": i, "name": name, "value": value, "multiline": value.contains('\n'), "error": error(&format!(".values.{name}")), "warning": warning(&format!(".values.{name}"))})
                    })
                    .collect();
                if rows.is_empty() {
                    rows.push(json!({"index": 0, "name": "", "value": ""}));
                }
                context["values"] = json!(rows);
                context["valuesError"] = json!(error(".values"));
                self.add_set_data(panel, at.number, node);
            }
            NodeKind::Delay => {
                context["amount"] = json!(node.wait_amount);
                let mut units: Vec<Value> = tree::UNITS
                    .iter()
                    .map(|(u, _, many)| json!({"value": u, "label": many, "selected": *u == node.wait_unit}))
                    .collect();
                // A wait of several units ("1h30m") is kept as written.
                if node.wait_unit.is_empty() && !node.wait_amount.trim().is_empty() {
                    units.push(json!({"value": "", "label": "(as written)", "selected": true}));
                }
                context["units"] = json!(units);
                context["until"] = json!(node.until);
                context["forError"] = json!(error(".for"));
                context["untilError"] = json!(error(".until"));
                context["untilWarning"] = json!(warning(".until"));
            }
            NodeKind::Stop => {
                context["statusOptions"] = json!([
                    {"value": "succeeded", "label": "The run succeeds", "selected": node.status != "failed"},
                    {"value": "failed", "label": "The run fails", "selected": node.status == "failed"},
                ]);
                context["message"] = json!(node.message);
                context["messageMultiline"] = json!(node.message.contains('\n'));
                context["statusError"] = json!(error(".status"));
                context["messageError"] = json!(error(".message"));
                context["messageWarning"] = json!(warning(".message"));
            }
            NodeKind::Json => {
                context["json"] = json!(node.json);
                // Every problem inside a node written as JSON is shown at its text.
                let inside: Vec<String> = errors
                    .iter()
                    .filter(|(field, _)| {
                        field.as_str() == path
                            || field
                                .strip_prefix(path)
                                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
                    })
                    .map(|(field, message)| {
                        let at = field.strip_prefix(path).unwrap_or_default();
                        let message = plain::message(message);
                        if at.is_empty() || at == ".json" {
                            message
                        } else {
                            format!("{}: {message}", at.trim_start_matches('.'))
                        }
                    })
                    .collect();
                marks.shown.extend(
                    errors
                        .keys()
                        .filter(|field| field.starts_with(path))
                        .cloned(),
                );
                context["jsonError"] = json!((!inside.is_empty()).then(|| inside.join("; ")));
            }
            NodeKind::Action => {}
        }
        context
    }

    /// A `set` node's values for the steps after it (`steps.<key>.<name>`).
    fn add_set_data(&self, panel: &mut Panel, number: &str, node: &Node) {
        if node.key.is_empty() {
            return;
        }
        let values: serde_json::Map<String, Value> = node
            .values
            .iter()
            .filter(|(name, _)| !name.trim().is_empty())
            .map(|(name, value)| (name.trim().to_owned(), json!(value)))
            .collect();
        if values.is_empty() {
            return;
        }
        panel.sections.push(data::section(
            &format!("Step {number}: values set"),
            "the values as written",
            &format!("steps.{}", node.key),
            &Value::Object(values),
        ));
    }
}

/// A condition's fields: one comparison, or JSON for `all`/`any`/`not`.
fn condition_context(
    prefix: &str,
    id: &str,
    condition: &Condition,
    marks: &mut Marks<'_>,
) -> Value {
    for part in ["", ".left", ".op", ".right", ".json"] {
        marks.shown.insert(format!("{prefix}{part}"));
    }
    let errors = marks.errors;
    let error = |suffix: &str| {
        errors
            .get(&format!("{prefix}{suffix}"))
            .map(|m| plain::message(m))
    };
    let warning = |suffix: &str| marks.warnings.get(&format!("{prefix}{suffix}"));
    json!({
        "name": prefix,
        "id": format!("{id}-cond"),
        "left": condition.left,
        "right": condition.right,
        "ops": condition.op_options(),
        "json": condition.json,
        "isJson": !condition.json.trim().is_empty(),
        "leftError": error(".left").or_else(|| error("")),
        "opError": error(".op"),
        "rightError": error(".right"),
        // Written as JSON, every problem of the condition is shown at its text.
        "jsonError": if condition.json.trim().is_empty() {
            error(".json")
        } else {
            ["", ".json", ".left", ".op", ".right"]
                .iter()
                .find_map(|suffix| error(suffix))
        },
        "leftWarning": warning(".left"),
        "rightWarning": warning(".right"),
    })
}

/// A switch's paths by letter, as its steps are numbered: a, b, … z, aa, ab, …
fn case_letters(index: usize) -> String {
    let mut letters = Vec::new();
    let mut n = index + 1;
    while n > 0 {
        n -= 1;
        letters.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
    }
    letters.iter().rev().collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_are_lettered_without_repeating() {
        let letters: Vec<String> = [0, 1, 25, 26, 27, 51, 52, 701, 702]
            .iter()
            .map(|i| super::case_letters(*i))
            .collect();
        assert_eq!(
            letters,
            ["a", "b", "z", "aa", "ab", "az", "ba", "zz", "aaa"]
        );
    }
}
