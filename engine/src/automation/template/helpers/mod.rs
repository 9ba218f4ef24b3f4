//! The mapping helpers of templates, one file per family, and what they share: a helper is a
//! function from its arguments to a value; reading an argument refuses a bad one with the
//! helper's name and the value; the caller prints the value or hands it to the enclosing
//! expression.

mod dates;
mod decimal;
mod lists;
mod logic;
mod numbers;
mod text;

use std::borrow::Cow;

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, ScopedJson,
};
use serde_json::Value;

use super::{BYTES_LEFT, ensure_fits, size_within};
use decimal::Decimal;

/// Every helper, by family.
pub(super) const ALL: [&[Spec]; 5] = [
    numbers::HELPERS,
    text::HELPERS,
    dates::HELPERS,
    lists::HELPERS,
    logic::HELPERS,
];

/// The helper called `name`, if there is one.
pub(super) fn find(name: &str) -> Option<&'static Spec> {
    ALL.iter()
        .flat_map(|family| family.iter())
        .find(|spec| spec.name == name)
}

/// One helper: its name, how many arguments it takes, and what it computes.
#[derive(Clone, Copy)]
pub(super) struct Spec {
    pub(super) name: &'static str,
    pub(super) min: usize,
    /// `usize::MAX` for any number.
    pub(super) max: usize,
    pub(super) run: fn(&Args) -> Result<Value, RenderError>,
}

/// Shorthand for a family's table.
const fn spec(
    name: &'static str,
    min: usize,
    max: usize,
    run: fn(&Args) -> Result<Value, RenderError>,
) -> Spec {
    Spec {
        name,
        min,
        max,
        run,
    }
}

/// Any number of arguments.
const MANY: usize = usize::MAX;

impl Spec {
    fn evaluate(&self, h: &Helper) -> Result<Value, RenderError> {
        let args = Args { name: self.name, h };
        if h.is_block() {
            // `{{#eq a b}}…{{/eq}}` would print `true` and drop the block: say how to write it.
            return Err(args.fail(format!(
                "is not a block; write {{{{#if ({} …)}}}}…{{{{/if}}}}",
                self.name
            )));
        }
        if !h.hash().is_empty() {
            return Err(args.fail("takes no named arguments (name=value)"));
        }
        let given = h.params().len();
        if given < self.min || given > self.max {
            let wanted = match (self.min, self.max) {
                (min, max) if min == max => plural(min, "argument"),
                (min, MANY) => format!("at least {}", plural(min, "argument")),
                (min, max) => format!("{min} to {max} arguments"),
            };
            return Err(args.fail(format!("takes {wanted}, not {given}")));
        }
        (self.run)(&args)
    }
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

impl HelperDef for Spec {
    /// The value, for an enclosing expression: `(split x ",")` stays a list.
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        self.evaluate(h).map(ScopedJson::Derived)
    }

    /// The value printed: texts as they are, lists and objects as JSON.
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let value = self.evaluate(h)?;
        let text = printed(&value)?;
        ensure_fits(text.len())?;
        out.write(&text)?;
        Ok(())
    }
}

/// How a value prints: texts as they are, null as nothing, lists and objects as JSON (measured
/// against the budget before they are built).
pub(super) fn printed(value: &Value) -> Result<Cow<'_, str>, RenderError> {
    Ok(match value {
        Value::String(text) => Cow::Borrowed(text),
        Value::Null => Cow::Borrowed(""),
        Value::Array(_) | Value::Object(_) => {
            ensure_fits(size_within(value, BYTES_LEFT.get()))?;
            Cow::Owned(value.to_string())
        }
        other => Cow::Owned(other.to_string()),
    })
}

/// A value as text, unbounded: for values already in the data or small by construction.
pub(super) fn text_of(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        Value::Null => Cow::Borrowed(""),
        other => Cow::Owned(other.to_string()),
    }
}

/// A value as an error message shows it: short, texts quoted.
pub(super) fn shown(value: &Value) -> String {
    const MOST: usize = 40;
    match value {
        Value::String(text) if text.chars().count() > MOST => {
            let head: String = text.chars().take(MOST).collect();
            format!("{:?}", head + "…")
        }
        Value::String(text) => format!("{text:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
        other => other.to_string(),
    }
}

/// The arguments of one helper call, read with the helper's name at hand for errors.
pub(super) struct Args<'a, 'rc> {
    name: &'static str,
    h: &'a Helper<'rc>,
}

impl<'a> Args<'a, '_> {
    /// A failure of this helper: `round: "abc" is not a number`.
    pub(super) fn fail(&self, what: impl std::fmt::Display) -> RenderError {
        RenderErrorReason::Other(format!("{}: {what}", self.name)).into()
    }

    pub(super) fn len(&self) -> usize {
        self.h.params().len()
    }

    /// Argument `i`, which must be there: a variable that is missing fails with its path,
    /// as it does anywhere in a template.
    pub(super) fn value(&self, i: usize) -> Result<&'a Value, RenderError> {
        let param = self
            .h
            .param(i)
            .ok_or_else(|| self.fail(format!("argument {} is missing", i + 1)))?;
        if param.is_value_missing() {
            return Err(RenderErrorReason::MissingVariable(param.relative_path().cloned()).into());
        }
        Ok(param.value())
    }

    /// Argument `i` when given.
    pub(super) fn optional(&self, i: usize) -> Result<Option<&'a Value>, RenderError> {
        if i < self.len() {
            self.value(i).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Every argument as it is, a missing variable as null (for `default` and `coalesce`).
    pub(super) fn lenient(&self) -> impl Iterator<Item = &'a Value> {
        self.h.params().iter().map(|p| p.value())
    }

    pub(super) fn text(&self, i: usize) -> Result<Cow<'a, str>, RenderError> {
        self.value(i).map(text_of)
    }

    /// Argument `i` as text when given, else `default`.
    pub(super) fn text_or(&self, i: usize, default: &'a str) -> Result<Cow<'a, str>, RenderError> {
        Ok(self.optional(i)?.map_or(Cow::Borrowed(default), text_of))
    }

    pub(super) fn number(&self, i: usize) -> Result<Decimal, RenderError> {
        self.number_of(self.value(i)?)
    }

    pub(super) fn number_of(&self, value: &Value) -> Result<Decimal, RenderError> {
        Decimal::of(value).map_err(|unfit| self.fail(format!("{} {unfit}", shown(value))))
    }

    /// Argument `i` as a whole number (`what` names it in errors); huge ones saturate.
    pub(super) fn whole(&self, i: usize, what: &str) -> Result<i64, RenderError> {
        let value = self.value(i)?;
        self.number_of(value)?
            .saturating_whole()
            .ok_or_else(|| self.fail(format!("{what} {} is not a whole number", shown(value))))
    }

    /// Argument `i` as a count (a whole number, not negative), or `default` when not given.
    pub(super) fn count_or(
        &self,
        i: usize,
        what: &str,
        default: usize,
    ) -> Result<usize, RenderError> {
        if i >= self.len() {
            return Ok(default);
        }
        let n = self.whole(i, what)?;
        usize::try_from(n).map_err(|_| {
            self.fail(format!(
                "{what} {n} is negative (a count of characters or places)"
            ))
        })
    }
}

#[cfg(test)]
pub(super) mod testing {
    //! What the families' tests share.

    use serde_json::{Value, json};

    use super::super::{TemplateError, render};

    /// A flow's data: a trigger with numbers, texts, a list of lines and dates.
    pub(crate) fn data() -> Value {
        json!({"trigger": {
            "name": "  Acme Corp  ",
            "amount": 1250,
            "price": "12.50",
            "hours": 1.5,
            "tags": "a,b,,c",
            "createdAt": "2026-11-22T09:30:00Z",
            "day": "2026-01-31",
            "email": null,
            "empty": "",
            "lines": [
                {"sku": "A", "qty": 2, "price": "0.10"},
                {"sku": "B", "qty": 1, "price": "0.20"},
                {"sku": "C", "qty": 3, "price": null}
            ],
            "people": [{"first": "Ada", "last": "Lovelace"}]
        }})
    }

    /// Renders `text` against [`data`].
    pub(crate) fn r(text: &str) -> Result<Value, TemplateError> {
        render(text, &data())
    }

    /// The error of rendering `text`, which must fail.
    pub(crate) fn fails(text: &str) -> String {
        match r(text) {
            Ok(value) => panic!("{text} rendered {value}"),
            Err(e) => e.0,
        }
    }
}
