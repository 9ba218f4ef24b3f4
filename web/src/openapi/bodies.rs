//! Request bodies per operation. A resource's input type is declared once with what a create
//! needs (`required`, non-null fields); an update (`PATCH`) takes any subset of it, and an
//! upsert by `externalId` takes it without `externalId`, which its path names. Both are derived
//! here, so the three can never disagree about a field.

use serde_json::{Map, Value, json};

const SCHEMAS: &str = "#/components/schemas/";

/// Fields a create sets once: an update refuses them (an invoice's customer and period).
const SET_ON_CREATE_ONLY: [(&str, &[&str]); 1] = [("InvoiceInput", &["customerId", "from", "to"])];

/// Gives every `PATCH` a partial body schema and every upsert one without `externalId`.
pub fn derive(document: &mut Value) {
    let mut derived: Vec<(String, String, Variant)> = Vec::new();
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        for (method, operation) in item.as_object_mut().into_iter().flatten() {
            let variant = match method.as_str() {
                "patch" => Variant::Update,
                "put" if path.ends_with("/by-external-id/{externalId}") => Variant::Upsert,
                _ => continue,
            };
            let Some(reference) =
                operation.pointer_mut("/requestBody/content/application~1json/schema/$ref")
            else {
                continue;
            };
            let Some(name) = reference
                .as_str()
                .and_then(|r| r.strip_prefix(SCHEMAS))
                .map(str::to_owned)
            else {
                continue;
            };
            let derived_name = variant.name_for(&name);
            *reference = json!(format!("{SCHEMAS}{derived_name}"));
            derived.push((name, derived_name, variant));
        }
    }
    let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (base, derived_name, variant) in derived {
        if schemas.contains_key(&derived_name) {
            continue;
        }
        let Some(mut schema) = schemas.get(&base).cloned() else {
            continue;
        };
        if let Some(object) = schema.as_object_mut() {
            variant.apply(object);
            if let Variant::Update = variant {
                let fixed = SET_ON_CREATE_ONLY.iter().filter(|(name, _)| *name == base);
                for field in fixed.flat_map(|(_, fields)| fields.iter()) {
                    if let Some(properties) =
                        object.get_mut("properties").and_then(Value::as_object_mut)
                    {
                        properties.remove(*field);
                    }
                }
            }
        }
        schemas.insert(derived_name, schema);
    }
}

#[derive(Clone, Copy)]
enum Variant {
    Update,
    Upsert,
}

impl Variant {
    fn suffix(self) -> &'static str {
        match self {
            Variant::Update => "Update",
            Variant::Upsert => "Upsert",
        }
    }

    /// `CustomerInput` → `CustomerUpdate`.
    fn name_for(self, base: &str) -> String {
        format!(
            "{}{}",
            base.strip_suffix("Input").unwrap_or(base),
            self.suffix()
        )
    }

    fn apply(self, schema: &mut Map<String, Value>) {
        match self {
            Variant::Update => {
                schema.remove("required");
                schema.insert(
                    "description".into(),
                    json!("Only the fields sent change; `null` clears a field that may be empty."),
                );
            }
            Variant::Upsert => {
                if let Some(properties) =
                    schema.get_mut("properties").and_then(Value::as_object_mut)
                {
                    properties.remove("externalId");
                }
                if let Some(required) = schema.get_mut("required").and_then(Value::as_array_mut) {
                    required.retain(|field| field != "externalId");
                }
                schema.insert(
                    "description".into(),
                    json!("The record's fields; `externalId` is the path's."),
                );
            }
        }
    }
}
