//! Reading a YAML (or JSON) document within a budget of values: YAML aliases repeat what they
//! name, so a small document can stand for an enormous one; reading stops at the budget instead
//! of filling the memory.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Values a connector document may hold, aliases counted each time they are used.
pub const MAX_VALUES: usize = 100_000;

/// The document in `text`, or why it cannot be read (not YAML, too large).
pub fn read(text: &str) -> Result<Value, String> {
    let left = Cell::new(MAX_VALUES);
    let deserializer = yaml_serde::Deserializer::from_str(text);
    Node(&left)
        .deserialize(deserializer)
        .map_err(|e| e.to_string())
}

/// One value, counted against what is left.
#[derive(Clone, Copy)]
struct Node<'a>(&'a Cell<usize>);

impl Node<'_> {
    fn take<E: de::Error>(self) -> Result<(), E> {
        match self.0.get().checked_sub(1) {
            Some(left) => {
                self.0.set(left);
                Ok(())
            }
            None => Err(E::custom(format!(
                "the document holds more than {MAX_VALUES} values (aliases counted each time)"
            ))),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.take()?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.take()?;
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.take()?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.take()?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.take()?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(self)? {
            let key = match key {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let value = map.next_value_seed(self)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_read_and_alias_bombs_stop_at_the_budget() {
        let value = read("a: 1\nb: [x, {c: true}]\n3: null\n").unwrap();
        assert_eq!(
            value,
            serde_json::json!({"a": 1, "b": ["x", {"c": true}], "3": null})
        );
        // Few aliases, each standing for many values: within the parser's own limit on
        // aliases, stopped by the budget.
        let items = vec!["1"; 2_000].join(", ");
        let refs = vec!["*a"; 60].join(", ");
        let wide = format!("a: &a [{items}]\nb: [{refs}]\n");
        let error = read(&wide).unwrap_err();
        assert!(error.contains("more than"), "{error}");
        // Aliases of aliases: the parser's limit.
        let mut deep = String::from("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n");
        for (name, previous) in [("b", "a"), ("c", "b"), ("d", "c"), ("e", "d"), ("f", "e")] {
            let refs = vec![format!("*{previous}"); 10].join(", ");
            deep.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        assert!(read(&deep).is_err());
        assert!(read("key: [").is_err());
    }
}
