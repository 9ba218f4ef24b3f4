//! Checks shared by the resources' inputs: text, emails, hours, choices, patches.

use crate::error::{Error, FieldError, Problems, Result};
use crate::store::patch::Patch;

/// Longest free text accepted in a short field (names, emails, codes).
pub const SHORT_TEXT: usize = 200;
/// Longest free text accepted in a long field (notes, descriptions, addresses).
pub const LONG_TEXT: usize = 10_000;

/// A trimmed optional text; empty means none.
pub fn opt_text(
    field: &str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, FieldError> {
    let Some(value) = value else { return Ok(None) };
    let value = value.trim().to_owned();
    if value.is_empty() {
        Ok(None)
    } else if value.chars().count() > max {
        Err(FieldError::new(
            field,
            "too_long",
            format!("{field} must be at most {max} characters"),
        ))
    } else {
        Ok(Some(value))
    }
}

/// A required text: present, not blank, not too long.
pub fn required_text(field: &str, value: Option<String>, max: usize) -> Result<String, FieldError> {
    opt_text(field, value, max)?.ok_or_else(|| FieldError::required(field))
}

/// A loose but useful email check: one `@`, something on both sides, a dot in the domain.
pub fn opt_email(field: &str, value: Option<String>) -> Result<Option<String>, FieldError> {
    let Some(value) = opt_text(field, value, SHORT_TEXT)? else {
        return Ok(None);
    };
    let valid = value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && !value.contains(char::is_whitespace)
    });
    if valid {
        Ok(Some(value.to_lowercase()))
    } else {
        Err(FieldError::new(
            field,
            "invalid",
            format!("{field} must be an email address"),
        ))
    }
}

/// Hours given as a JSON number, stored as whole seconds.
pub fn opt_hours(field: &str, value: Option<f64>) -> Result<Option<i64>, FieldError> {
    match value {
        None => Ok(None),
        Some(h) if h.is_finite() && (0.0..=1_000_000.0).contains(&h) => {
            Ok(Some((h * 3600.0).round() as i64))
        }
        Some(_) => Err(FieldError::new(
            field,
            "invalid",
            format!("{field} must be a number of hours from 0 to 1000000"),
        )),
    }
}

/// Seconds shown as hours, to the second.
pub fn hours(seconds: Option<i64>) -> Option<f64> {
    seconds.map(|s| (s as f64 / 3600.0 * 10_000.0).round() / 10_000.0)
}

/// One of a fixed set of values.
pub fn one_of(field: &str, value: String, allowed: &[&str]) -> Result<String, FieldError> {
    if allowed.contains(&value.as_str()) {
        Ok(value)
    } else {
        Err(FieldError::new(
            field,
            "invalid",
            format!("{field} must be one of {}", allowed.join(", ")),
        ))
    }
}

/// The OpenAPI schema of a [`one_of`] check: a string among `allowed`. The inputs' named
/// choices (`TaskStatus`, `WeekdayName`…) are built with it from the lists their checks use,
/// so the document cannot drift from what is accepted.
pub fn one_of_schema<'a>(
    description: &str,
    allowed: impl IntoIterator<Item = &'a str>,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some(description))
        .enum_values(Some(allowed))
        .into()
}

/// Applies a patch to a required field: `null` is refused.
pub fn patch_required<T>(
    problems: &mut Problems,
    field: &str,
    patch: Patch<T>,
    current: Option<T>,
) -> Option<T> {
    match patch {
        Patch::Null => {
            problems.add(field, "required", format!("{field} cannot be null"));
            None
        }
        other => other.apply(current),
    }
}

/// The end of an input's checks: the values its checks kept, with no problem recorded.
///
/// Checks record their problems in [`Problems`] and keep an `Option` per field, so that one
/// answer names every bad field. Once [`Problems::finish`] found none, each kept value is there;
/// [`Checked::get`] unwraps it without a `let (Some(a), Some(b), …) = … else` per input.
#[derive(Debug, Clone, Copy)]
pub struct Checked {
    noun: &'static str,
}

impl Problems {
    /// A `Validation` error naming every problem found, or a [`Checked`] for the `noun`'s
    /// kept values.
    pub fn finish(self, noun: &'static str) -> Result<Checked> {
        self.into_result()?;
        Ok(Checked { noun })
    }
}

impl Checked {
    /// A value the checks kept. `None` means a check dropped a value without recording a
    /// problem: a bug, answered as an internal error rather than a panic.
    pub fn get<T>(&self, value: Option<T>) -> Result<T> {
        value.ok_or_else(|| {
            Error::Internal(format!("{} fields missing after validation", self.noun))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_names_every_problem_or_hands_out_the_kept_values() {
        let mut p = Problems::default();
        let name = p.take(required_text("name", None, SHORT_TEXT));
        let email = p.take(opt_email("email", Some("nope".into())));
        assert_eq!((name, email), (None, None));
        match p.finish("thing") {
            Err(Error::Validation(errors)) => assert_eq!(errors.len(), 2),
            other => panic!("expected a validation error, got {other:?}"),
        }

        let mut p = Problems::default();
        let name = p.take(required_text("name", Some(" Acme ".into()), SHORT_TEXT));
        let ok = p.finish("thing").unwrap();
        assert_eq!(ok.get(name).unwrap(), "Acme");
        // A value dropped without a problem is a bug: an internal error, not a panic.
        assert!(matches!(ok.get(None::<String>), Err(Error::Internal(_))));
    }
}
