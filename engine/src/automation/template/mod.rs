//! Templates: handlebars in strict mode, so a missing variable fails with its path instead of
//! rendering an empty string. A template that is exactly one `{{path}}` yields the value itself
//! (a number stays a number, an object an object), and one that is exactly one helper call
//! (`{{split trigger.tags ","}}`, `{{multiply trigger.hours trigger.rate}}`) yields the helper's
//! value (a list, an object, a number, a boolean, a text or null); anything else renders to a
//! string. docs/flows.md ("Mapping helpers") lists the helpers with an example each.
//!
//! The mapping helpers live in [`helpers`], one file per family (numbers on exact decimals, text,
//! dates, lists, logic); this module compiles templates, registers the helpers and keeps the
//! budget. Its tests are in `tests.rs`, the helpers' in their files. Every
//! helper gives a value, so it works alike as a subexpression (`{{#if (gt trigger.amount
//! 1000)}}`, `{{join (split x ";") ", "}}`) and printed (lists and objects print as JSON).
//!
//! Templates are written by organizations, so they run inside a [`Budget`]: partials and
//! decorators (the only way to recurse) are refused, blocks nest at most [`MAX_NESTING`] deep,
//! subexpressions at most [`MAX_SUBEXPRESSION_DEPTH`], the text rendered for one input (and any
//! helper's text or list inside it) is at most [`MAX_OUTPUT_BYTES`], and the work done (every
//! block body entered, every `{{#each}}` item, every expression, every list item or 256 bytes of
//! text a helper goes through) at most [`MAX_WORK`] steps. Exceeding one fails the render with a
//! plain reason; nothing a template does can overflow the stack, allocate without bound or run
//! without end.

mod helpers;
mod variables;

pub use variables::variables;

use std::cell::{Cell, RefCell};
use std::sync::OnceLock;

use handlebars::template::{HelperTemplate, Parameter, Subexpression, TemplateElement};
use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, Path, RenderContext, RenderError,
    RenderErrorReason, Renderable, Template,
};
use serde_json::Value;

/// A template that does not parse, or that failed to render, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// The helper injected at the start of every block body to count it against the budget.
const TICK: &str = "__timix_block_entered";
/// The helper a template made of one helper call is wrapped in, to keep the call's value.
const KEEP_VALUE: &str = "__timix_keep_value";

fn registry() -> &'static Handlebars<'static> {
    static REGISTRY: OnceLock<Handlebars<'static>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        // Values go into JSON as values, never as HTML.
        hb.register_escape_fn(handlebars::no_escape);
        for spec in helpers::ALL.iter().flat_map(|family| family.iter()) {
            hb.register_helper(spec.name, Box::new(*spec));
        }
        hb.register_helper(TICK, Box::new(block_entered_helper));
        hb.register_helper(KEEP_VALUE, Box::new(keep_value_helper));
        // `log` writes to the process's stdout: not something an organization's template may do.
        hb.unregister_helper("log");
        hb
    })
}

/// The names of the mapping helpers, for tests that call every one of them.
#[cfg(test)]
pub(crate) fn helper_names() -> impl Iterator<Item = &'static str> {
    helpers::ALL
        .into_iter()
        .flat_map(|family| family.iter().map(|spec| spec.name))
}

/// Longest template accepted, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 10_000;
/// Deepest nesting of blocks and subexpressions accepted (the parser recurses on them).
pub const MAX_NESTING: usize = 32;
/// Most text one input (all its templates together) renders to.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;
/// Most block bodies one input (all its templates together) enters.
pub const MAX_WORK: u64 = 1_000_000;
/// Deepest nesting of subexpressions (`(json (upper x))`): each may build a string of its own.
pub const MAX_SUBEXPRESSION_DEPTH: usize = 8;
/// Bytes of text a helper goes through for one step of work.
const BYTES_PER_STEP: usize = 256;

/// What one input may still spend while its templates render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub output_bytes: usize,
    /// Steps of work left: block bodies entered and expressions evaluated.
    pub work: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            output_bytes: MAX_OUTPUT_BYTES,
            work: MAX_WORK,
        }
    }
}

thread_local! {
    /// Block entries left for the render running on this thread (renders never interleave on
    /// one thread: a render is synchronous from start to end).
    static WORK_LEFT: Cell<u64> = const { Cell::new(0) };
    /// Bytes of text left for the render running on this thread: helpers check what they
    /// build against it (a subexpression's text is not written to the bounded output).
    static BYTES_LEFT: Cell<usize> = const { Cell::new(0) };
    /// The value of a template made of one helper call, once rendered.
    static KEPT: RefCell<Option<Value>> = const { RefCell::new(None) };
}

/// Checks that `text` parses as a template that stays within the rules above.
pub fn check(text: &str) -> Result<(), TemplateError> {
    compile(text).map(drop)
}

/// Parses `text` into a template ready to render within a budget: refused when too long, too
/// deep, unparsable, or using partials or decorators.
fn compile(text: &str) -> Result<Template, TemplateError> {
    if text.len() > MAX_TEMPLATE_BYTES {
        return Err(TemplateError(format!(
            "a template is at most {MAX_TEMPLATE_BYTES} bytes"
        )));
    }
    if block_openings(text) > MAX_NESTING || text.matches('(').count() > MAX_NESTING * 4 {
        return Err(TemplateError(format!(
            "a template nests at most {MAX_NESTING} blocks"
        )));
    }
    // The parser's own message for an unclosed `{{` names grammar rules; say it plainly.
    if text.matches("{{").count() > text.matches("}}").count() {
        return Err(TemplateError(
            "the template does not parse: a {{ is not closed with }}".into(),
        ));
    }
    if subexpression_depth(text) > MAX_SUBEXPRESSION_DEPTH {
        return Err(TemplateError(format!(
            "a template nests at most {MAX_SUBEXPRESSION_DEPTH} subexpressions"
        )));
    }
    let mut template = Template::compile(text)
        .map_err(|e| TemplateError(format!("the template does not parse: {}", e.reason())))?;
    instrument(&mut template, false)?;
    Ok(template)
}

/// Refuses partials and decorators anywhere in `template`, makes every block body and every
/// expression count itself against the budget, and (`in_block`) keeps fields named like
/// helpers readable.
fn instrument(template: &mut Template, in_block: bool) -> Result<(), TemplateError> {
    let mut counted = Vec::with_capacity(template.elements.len() * 2);
    let mut mapping = Vec::with_capacity(template.elements.len() * 2);
    let old_mapping = std::mem::take(&mut template.mapping);
    for (i, mut element) in std::mem::take(&mut template.elements)
        .into_iter()
        .enumerate()
    {
        let at = old_mapping.get(i).cloned();
        if matches!(
            element,
            TemplateElement::Expression(_) | TemplateElement::HtmlExpression(_)
        ) {
            counted.push(tick().clone());
            mapping.extend(at.clone());
        }
        match &mut element {
            TemplateElement::PartialExpression(_) | TemplateElement::PartialBlock(_) => {
                return Err(TemplateError(
                    "partials ({{> …}}) are not available in flow templates".into(),
                ));
            }
            TemplateElement::DecoratorExpression(_) | TemplateElement::DecoratorBlock(_) => {
                return Err(TemplateError(
                    "inline partials and decorators ({{#* …}}, {{* …}}) are not available in flow templates"
                        .into(),
                ));
            }
            TemplateElement::HelperBlock(block) => {
                if in_block {
                    read_as_field(block);
                }
                instrument_block(block)?;
            }
            TemplateElement::Expression(expression)
            | TemplateElement::HtmlExpression(expression)
                if in_block =>
            {
                read_as_field(expression)
            }
            _ => {}
        }
        counted.push(element);
        mapping.extend(at);
    }
    template.elements = counted;
    // Error positions stay right as long as every element keeps one.
    if mapping.len() == template.elements.len() {
        template.mapping = mapping;
    }
    Ok(())
}

/// `{{first}}` with nothing to work on is the field `first` of the current item, as it was
/// before `first` was a helper: a loop over people keeps printing `{{first}} {{last}}`. Only
/// inside blocks: at the top the fields are `trigger`, `steps`…, and a helper called without
/// arguments is told so.
fn read_as_field(expression: &mut HelperTemplate) {
    if !expression.params.is_empty() || !expression.hash.is_empty() {
        return;
    }
    let name = match &expression.name {
        Parameter::Name(name) => name,
        Parameter::Path(Path::Relative((_, raw))) => raw,
        _ => return,
    };
    if helpers::find(name).is_some()
        && let Ok(path) = Path::parse(&format!("this.{name}"))
    {
        expression.name = Parameter::Path(path);
    }
}

/// When `template` is exactly one call of a helper (after its tick), wraps the call so that
/// rendering keeps the call's value instead of its text; says whether it did.
fn keep_value_of_sole_call(template: &mut Template) -> bool {
    let [
        first,
        TemplateElement::Expression(call) | TemplateElement::HtmlExpression(call),
    ] = template.elements.as_mut_slice()
    else {
        return false;
    };
    let is_call = matches!(&call.name, Parameter::Name(name) if helpers::find(name).is_some());
    if *first != *tick() || !is_call {
        return false;
    }
    let mut keep = call.clone();
    keep.name = Parameter::Name(KEEP_VALUE.to_owned());
    keep.hash.clear();
    keep.params = vec![Parameter::Subexpression(Subexpression::new(
        call.name.clone(),
        call.params.clone(),
        call.hash.clone(),
    ))];
    template.elements[1] = TemplateElement::Expression(keep);
    true
}

/// How deep parentheses (subexpressions) nest in `text`, counted without parsing.
fn subexpression_depth(text: &str) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0;
    for c in text.chars() {
        match c {
            '(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn instrument_block(block: &mut HelperTemplate) -> Result<(), TemplateError> {
    for body in [&mut block.template, &mut block.inverse]
        .into_iter()
        .flatten()
    {
        instrument(body, true)?;
        body.elements.insert(0, tick().clone());
        if !body.mapping.is_empty() {
            let first = body.mapping[0].clone();
            body.mapping.insert(0, first);
        }
    }
    Ok(())
}

/// `{{__timix_block_entered}}`, compiled once.
fn tick() -> &'static TemplateElement {
    static TICK_ELEMENT: OnceLock<TemplateElement> = OnceLock::new();
    TICK_ELEMENT.get_or_init(|| {
        Template::compile(&format!("{{{{{TICK}}}}}"))
            .ok()
            .and_then(|t| t.elements.into_iter().next())
            .unwrap_or_else(|| TemplateElement::Comment(String::new()))
    })
}

fn block_entered_helper(
    _: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    _: &mut dyn Output,
) -> HelperResult {
    spend(1)
}

/// Keeps its parameter (a helper call's value) for [`render_in`] and prints nothing.
fn keep_value_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    _: &mut dyn Output,
) -> HelperResult {
    let value = h.param(0).map(|p| p.value()).unwrap_or(&Value::Null);
    ensure_fits(size_within(value, BYTES_LEFT.get()))?;
    KEPT.set(Some(value.clone()));
    Ok(())
}

/// Counts `steps` of work against what the render has left, failing once it is spent.
fn spend(steps: u64) -> Result<(), RenderError> {
    let left = WORK_LEFT.get();
    if steps > left {
        WORK_LEFT.set(0);
        return Err(RenderErrorReason::Other(format!(
            "the template does more than {MAX_WORK} steps of work (blocks, loop items, expressions: the limit of one input)"
        ))
        .into());
    }
    WORK_LEFT.set(left - steps);
    Ok(())
}

/// Counts going through `len` bytes of text as work.
fn spend_on_text(len: usize) -> Result<(), RenderError> {
    spend((len / BYTES_PER_STEP) as u64)
}

/// Collects rendered text up to the bytes the budget has left.
struct BoundedOutput {
    text: String,
}

impl Output for BoundedOutput {
    fn write(&mut self, seg: &str) -> Result<(), std::io::Error> {
        let left = BYTES_LEFT.get();
        if seg.len() > left {
            return Err(std::io::Error::other(OUTPUT_EXCEEDED));
        }
        BYTES_LEFT.set(left - seg.len());
        self.text.push_str(seg);
        Ok(())
    }
}

/// Refuses a helper's text of `len` bytes (or a value that large as JSON) before it is built,
/// when it cannot fit in what the render has left.
fn ensure_fits(len: usize) -> Result<(), RenderError> {
    if len > BYTES_LEFT.get() {
        return Err(RenderErrorReason::Other(OUTPUT_EXCEEDED.into()).into());
    }
    Ok(())
}

const OUTPUT_EXCEEDED: &str = "the template renders more than 1 MiB (the limit of one input)";

/// How many blocks a template opens (`{{#if}}`, `{{~#each}}`, `{{^x}}`, `{{else if}}`…): an
/// upper bound of how deep the parser recurses, counted without parsing.
fn block_openings(text: &str) -> usize {
    text.match_indices("{{")
        .filter(|(i, _)| {
            let rest = text[i + 2..]
                .trim_start_matches(|c: char| c == '{' || c == '~' || c.is_whitespace());
            rest.starts_with(['#', '^']) || rest.starts_with("else")
        })
        .count()
}

/// The single variable path of a template like `{{ trigger.name }}`, if that is all it is. A
/// helper's name alone (`{{split}}`) is a call without arguments, told so by the helper.
fn sole_path(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let simple = !inner.is_empty()
        && inner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']'))
        && !inner.starts_with(['.', '['])
        && !inner.contains("..")
        && helpers::find(inner).is_none();
    simple.then_some(inner)
}

/// Looks a dotted path (`steps.project.id`, `trigger.items.[0]`) up in `data`.
fn lookup<'a>(data: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .map(|part| part.trim_start_matches('[').trim_end_matches(']'))
        .try_fold(data, |value, part| match value {
            Value::Object(map) => map.get(part),
            Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
}

/// Renders one template against `data`, within a budget of its own.
pub fn render(text: &str, data: &Value) -> Result<Value, TemplateError> {
    render_within(text, data, &mut Budget::default())
}

/// Renders one template against `data`, spending from `budget`.
pub fn render_within(
    text: &str,
    data: &Value,
    budget: &mut Budget,
) -> Result<Value, TemplateError> {
    render_in(text, data, &mut None, budget)
}

/// Takes what a copied or kept value costs (its size as JSON) from `budget`.
fn charge_value(value: &Value, budget: &mut Budget) -> Result<(), TemplateError> {
    // A copied value counts as rendered text: an input of many `{{trigger}}` is as large.
    budget.output_bytes = budget
        .output_bytes
        .checked_sub(size_within(value, budget.output_bytes))
        .ok_or_else(|| TemplateError(OUTPUT_EXCEEDED.into()))?;
    Ok(())
}

/// [`render_within`] with the data wrapped for handlebars once per input (`context`), not once
/// per template.
fn render_in(
    text: &str,
    data: &Value,
    context: &mut Option<Context>,
    budget: &mut Budget,
) -> Result<Value, TemplateError> {
    if let Some(path) = sole_path(text) {
        let value = lookup(data, path)
            .ok_or_else(|| TemplateError(format!("{path} is missing (no such variable)")))?;
        charge_value(value, budget)?;
        return Ok(value.clone());
    }
    if !text.contains("{{") {
        return Ok(Value::String(text.to_owned()));
    }
    let mut template = compile(text)?;
    let keeps_value = keep_value_of_sole_call(&mut template);
    if context.is_none() {
        *context = Some(Context::wraps(data).map_err(|e| TemplateError(describe(&e)))?);
    }
    let Some(context) = context.as_ref() else {
        unreachable!("set above");
    };
    let mut out = BoundedOutput {
        text: String::new(),
    };
    WORK_LEFT.set(budget.work);
    BYTES_LEFT.set(budget.output_bytes);
    KEPT.set(None);
    let registry = registry();
    let mut render_context = RenderContext::new(None);
    let rendered = template.render(registry, context, &mut render_context, &mut out);
    budget.work = WORK_LEFT.get();
    budget.output_bytes -= out.text.len();
    // Taken even when the render failed, so no value outlives its render on this thread.
    let kept = KEPT.take();
    rendered.map_err(|e| TemplateError(describe(&e)))?;
    match kept {
        Some(value) if keeps_value => {
            charge_value(&value, budget)?;
            Ok(value)
        }
        _ => Ok(Value::String(out.text)),
    }
}

fn describe(error: &RenderError) -> String {
    match error.reason() {
        RenderErrorReason::MissingVariable(Some(path)) => {
            format!("{path} is missing (no such variable)")
        }
        RenderErrorReason::TemplateError(e) => {
            format!("the template does not parse: {}", e.reason())
        }
        RenderErrorReason::IOError(e) if e.to_string() == OUTPUT_EXCEEDED => {
            OUTPUT_EXCEEDED.to_owned()
        }
        RenderErrorReason::Other(text) => text.clone(),
        other => other.to_string(),
    }
}

/// About the size of `value` as JSON text, counted only up to just past `limit` (so measuring
/// never costs more than the budget it is measured against).
fn size_within(value: &Value, limit: usize) -> usize {
    fn walk(value: &Value, limit: usize, size: &mut usize) {
        if *size > limit {
            return;
        }
        match value {
            Value::String(text) => *size += text.len() + 2,
            Value::Object(map) => {
                *size += 2;
                for (key, inner) in map {
                    *size += key.len() + 4;
                    walk(inner, limit, size);
                    if *size > limit {
                        return;
                    }
                }
            }
            Value::Array(items) => {
                *size += 2;
                for inner in items {
                    *size += 1;
                    walk(inner, limit, size);
                    if *size > limit {
                        return;
                    }
                }
            }
            _ => *size += 8,
        }
    }
    let mut size = 0;
    walk(value, limit, &mut size);
    size.min(limit.saturating_add(1))
}

/// Whether rendering `value` (as [`render_value`] does) runs the template engine at all, rather
/// than only copying values: such work belongs off the async workers.
pub fn needs_engine(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains("{{") && sole_path(text).is_none(),
        Value::Object(map) => map.values().any(needs_engine),
        Value::Array(items) => items.iter().any(needs_engine),
        _ => false,
    }
}

/// Renders a template whose variables may be absent (a manifest's optional inputs): a sole
/// `{{path}}` that is missing gives None; anything else renders as [`render`] does.
pub fn render_optional(text: &str, data: &Value) -> Result<Option<Value>, TemplateError> {
    if let Some(path) = sole_path(text) {
        return Ok(lookup(data, path).cloned());
    }
    render(text, data).map(Some)
}

/// Renders every string of `value` that is a template (object values, array items), keeping
/// its shape, all of them within one [`Budget`]. Errors carry the path below `at`, e.g.
/// `steps[0].input.name`.
pub fn render_value(
    value: &Value,
    data: &Value,
    at: &str,
) -> Result<Value, (String, TemplateError)> {
    render_value_within(value, data, at, &mut None, &mut Budget::default())
}

fn render_value_within(
    value: &Value,
    data: &Value,
    at: &str,
    context: &mut Option<Context>,
    budget: &mut Budget,
) -> Result<Value, (String, TemplateError)> {
    match value {
        Value::String(text) => {
            render_in(text, data, context, budget).map_err(|e| (at.to_owned(), e))
        }
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (key, inner) in map {
                let at = format!("{at}.{key}");
                out.insert(
                    key.clone(),
                    render_value_within(inner, data, &at, context, budget)?,
                );
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, inner)| {
                render_value_within(inner, data, &format!("{at}[{i}]"), context, budget)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

/// Checks that every string of `value` parses as a template; the first failure with its path.
pub fn check_value(value: &Value, at: &str) -> Result<(), (String, TemplateError)> {
    match value {
        Value::String(text) => check(text).map_err(|e| (at.to_owned(), e)),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(key, inner)| check_value(inner, &format!("{at}.{key}"))),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, inner)| check_value(inner, &format!("{at}[{i}]"))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
