//! The Workato connector (`timix export workato --out DIR` writes `connector.rb`), in Workato's
//! connector SDK: a connection (server URL and API key, `apply` adding the key, `base_uri`), a
//! `test` against `/me`, a trigger per trigger manifest (`poll`: new records on a `createdSince`
//! cursor in creation order, changes on `updatedSince` and the `X-Sync-Watermark` the API gives
//! back, the position kept in the closure as ISO 8601 text; `dedup`; and `webhook_subscribe`/`webhook_unsubscribe`/
//! `webhook_notification` on `/hooks`), an action per action manifest on this API (`execute`
//! performs its request and returns what its `output_fields` declare: a search the record it
//! found; `http_request` is left out: `apply` would give the key to any host), `pick_lists` for
//! the dropdowns and `object_definitions` read off the samples.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;
use timix_engine::automation::manifest::{ActionManifest, Manifests, Mapping, Select};

use super::{ExportError, Field, check, fields, lookups};

/// A Ruby string literal (single-quoted: no interpolation).
fn ruby_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A Ruby literal of a JSON value.
fn ruby(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => ruby_string(s),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(ruby).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{ {} }}",
            map.iter()
                .map(|(k, v)| format!("{} => {}", ruby_string(k), ruby(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A Ruby expression for a template: `{{input.x}}` parts read `input['x']`; in paths each value
/// is URL-encoded. A sole placeholder keeps the value's type.
fn ruby_template(template: &str, encode: bool) -> String {
    let trimmed = template.trim();
    if !encode
        && trimmed.starts_with("{{")
        && trimmed.ends_with("}}")
        && trimmed.matches("{{").count() == 1
    {
        let field = trimmed[2..trimmed.len() - 2]
            .trim()
            .trim_start_matches("input.");
        return format!("input[{}]", ruby_string(field));
    }
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(ruby_string(&rest[..start]));
        }
        let end = rest[start..].find("}}").map_or(rest.len(), |e| start + e);
        let field = rest[start + 2..end].trim().trim_start_matches("input.");
        parts.push(if encode {
            format!(
                "CGI.escape(input[{}].to_s).gsub('+', '%20')",
                ruby_string(field)
            )
        } else {
            format!("input[{}].to_s", ruby_string(field))
        });
        rest = rest.get(end + 2..).unwrap_or("");
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(ruby_string(rest));
    }
    parts.join(" + ")
}

fn ruby_mapping(mapping: &Mapping, exclude: &[String]) -> String {
    match mapping {
        Mapping::Input(reference) => match reference.strip_prefix("input.") {
            Some(field) => format!("input[{}]", ruby_string(field)),
            None => format!(
                "input.except({})",
                exclude
                    .iter()
                    .map(|e| ruby_string(e))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        Mapping::Templates(map) => format!(
            "{{ {} }}.compact.reject {{ |_k, v| v == '' }}",
            map.iter()
                .map(|(k, v)| format!("{} => {}", ruby_string(k), ruby_template(v, false)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Mapping::Tree(map) => ruby_tree(&Value::Object(map.clone())),
    }
}

/// A nested body as a Ruby literal with each template written in Ruby.
fn ruby_tree(value: &Value) -> String {
    match value {
        Value::String(text) => ruby_template(text, false),
        Value::Object(map) => format!(
            "{{ {} }}",
            map.iter()
                .map(|(k, v)| format!("{} => {}", ruby_string(k), ruby_tree(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(ruby_tree).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

/// Workato's name for the API path below `base_uri` (no leading slash).
fn relative(path_expression: String) -> String {
    path_expression.replacen("'/", "'", 1)
}

fn input_field(field: &Field, pick_lists: &BTreeMap<String, String>) -> String {
    let mut parts = vec![
        format!("name: {}", ruby_string(&field.key)),
        format!("label: {}", ruby_string(&field.label)),
        format!("optional: {}", !field.required),
    ];
    // `convert_input` turns a value mapped from another app as text ("1800", "true") into the
    // field's type before `execute` sees it.
    let (kind, control, convert) = match field.kind {
        "integer" => ("integer", "integer", Some("integer_conversion")),
        "number" => ("number", "number", Some("float_conversion")),
        "boolean" => ("boolean", "checkbox", Some("boolean_conversion")),
        "datetime" => ("date_time", "date_time", Some("render_iso8601_timestamp")),
        "object" | "json" => ("object", "text-area", None),
        "array" => ("array", "text", None),
        _ => ("string", "text", None),
    };
    parts.push(format!("type: {}", ruby_string(kind)));
    if let Some(convert) = convert {
        parts.push(format!("convert_input: {}", ruby_string(convert)));
    }
    if let Some(list) = field.lookup.as_ref().and_then(|l| pick_lists.get(l)) {
        parts.push("control_type: 'select'".into());
        parts.push(format!("pick_list: {}", ruby_string(list)));
    } else if !field.choices.is_empty() {
        parts.push("control_type: 'select'".into());
        let choices: Vec<String> = field
            .choices
            .iter()
            .map(|c| format!("[{}, {}]", ruby_string(c), ruby_string(c)))
            .collect();
        parts.push(format!("pick_list: [{}]", choices.join(", ")));
    } else {
        parts.push(format!("control_type: {}", ruby_string(control)));
    }
    if let Some(help) = &field.help {
        parts.push(format!("hint: {}", ruby_string(help)));
    }
    format!("{{ {} }}", parts.join(", "))
}

/// An action's output fields: the record it returns, or (a list) the records under `items`.
fn output_fields(action: &ActionManifest) -> String {
    let record = sample_fields(&action.sample);
    match action.output.select {
        Select::Items => {
            format!("[{{ name: 'items', type: 'array', of: 'object', properties: {record} }}]")
        }
        Select::Item | Select::First => record,
    }
}

/// What an action returns for its sample record.
fn sample_output(action: &ActionManifest) -> String {
    match action.output.select {
        Select::Items => format!("{{ 'items' => [{}] }}", ruby(&action.sample)),
        Select::Item | Select::First => ruby(&action.sample),
    }
}

fn sample_fields(sample: &Value) -> String {
    let fields: Vec<String> = sample
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| {
            let kind = match value {
                Value::Bool(_) => "boolean",
                Value::Number(n) if n.is_i64() => "integer",
                Value::Number(_) => "number",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
                _ => "string",
            };
            format!(
                "{{ name: {}, type: {} }}",
                ruby_string(name),
                ruby_string(kind)
            )
        })
        .collect();
    format!("[{}]", fields.join(", "))
}

fn execute(action: &ActionManifest) -> String {
    let spec = &action.request;
    let mut lines = vec![format!(
        "method = ({}).to_s.downcase",
        ruby_template(&spec.method, false)
    )];
    match (&spec.path, &spec.url) {
        (Some(path), _) => {
            let (path, query) = path.split_once('?').unwrap_or((path, ""));
            lines.push(format!("url = {}", relative(ruby_template(path, true))));
            let mut params: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| format!("{} => {}", ruby_string(&k), ruby_string(&v)))
                .collect();
            if let Some(Mapping::Templates(map)) = &spec.query {
                params
                    .extend(map.iter().map(|(k, v)| {
                        format!("{} => {}", ruby_string(k), ruby_template(v, false))
                    }));
            }
            lines.push(format!(
                "params = {{ {} }}.compact.reject {{ |_k, v| v == '' }}",
                params.join(", ")
            ));
        }
        (None, Some(url)) => {
            lines.push(format!("url = {}", ruby_template(url, false)));
            lines.push(format!(
                "params = {}",
                spec.query.as_ref().map_or("{}".into(), |q| format!(
                    "({}) || {{}}",
                    ruby_mapping(q, &[])
                ))
            ));
        }
        (None, None) => lines.push("url = ''".into()),
    }
    let body = spec
        .body
        .as_ref()
        .map_or("nil".into(), |b| ruby_mapping(b, &spec.exclude));
    lines.push(format!("payload = {body}"));
    lines.push(
        "request = case method\n          when 'get' then get(url, params)\n          when 'delete' then delete(url).params(params)\n          when 'patch' then patch(url, payload).params(params)\n          when 'put' then put(url, payload).params(params)\n          else post(url, payload).params(params)\n          end"
            .into(),
    );
    if let Some(Mapping::Input(_)) = &spec.headers {
        lines.push("request = request.headers(input['headers'] || {})".into());
    }
    let read = match action.output.select {
        Select::Item if spec.url.is_some() => {
            "request.after_response { |code, body, _headers| { 'status' => code, 'body' => body } }"
        }
        Select::Item => "request",
        // The record itself, as `output_fields` declare it; nothing found is an empty record.
        Select::First => "(request['items'] || []).first || {}",
        Select::Items => "{ 'items' => request['items'] || [] }",
    };
    lines.push(read.into());
    lines.join("\n        ")
}

/// The actions on this API. Actions that call any URL (`http_request`) are left out: the
/// connection's `apply` adds the API key to every request the connector makes, and Workato's own
/// HTTP connector calls other APIs.
fn this_api(manifests: &Manifests) -> impl Iterator<Item = &ActionManifest> {
    manifests
        .actions
        .values()
        .filter(|a| a.request.url.is_none())
}

/// The connector's source.
pub fn source(manifests: &Manifests, version: &str) -> Result<String, ExportError> {
    check(manifests)?;
    let mut pick_lists = BTreeMap::new();
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "# Generated by `timix export workato` from the timix manifests ({version}): export again rather than edit."
    );
    let _ = writeln!(w, "{{");
    let _ = writeln!(w, "  title: 'timix',");
    let _ = writeln!(w, "  connection: {{");
    let _ = writeln!(w, "    fields: [");
    let _ = writeln!(
        w,
        "      {{ name: 'base_url', label: 'Server URL', optional: false, control_type: 'url', hint: 'Where your timix server is reached, for example https://timix.example.com' }},"
    );
    let _ = writeln!(
        w,
        "      {{ name: 'api_key', label: 'API key', optional: false, control_type: 'password', hint: 'A key created in timix; it starts with bbl_' }}"
    );
    let _ = writeln!(w, "    ],");
    let _ = writeln!(w, "    authorization: {{");
    let _ = writeln!(w, "      type: 'api_key',");
    let _ = writeln!(w, "      apply: lambda do |connection|");
    let _ = writeln!(w, "        headers('X-Api-Key' => connection['api_key'])");
    let _ = writeln!(w, "      end");
    let _ = writeln!(w, "    }},");
    let _ = writeln!(w, "    base_uri: lambda do |connection|");
    let _ = writeln!(
        w,
        "      \"#{{connection['base_url'].to_s.sub(%r{{/+\\z}}, '')}}/api/integration/v1/\""
    );
    let _ = writeln!(w, "    end");
    let _ = writeln!(w, "  }},");
    let _ = writeln!(w, "  test: lambda do |_connection|");
    let _ = writeln!(w, "    get('me')");
    let _ = writeln!(w, "  end,");

    let _ = writeln!(w, "  object_definitions: {{");
    for trigger in manifests.triggers.values() {
        let _ = writeln!(w, "    {}: {{", trigger.key);
        let _ = writeln!(w, "      fields: lambda do |_connection, _config_fields|");
        let _ = writeln!(w, "        {}", sample_fields(&trigger.sample));
        let _ = writeln!(w, "      end");
        let _ = writeln!(w, "    }},");
    }
    for action in this_api(manifests) {
        let _ = writeln!(w, "    {}_output: {{", action.key);
        let _ = writeln!(w, "      fields: lambda do |_connection, _config_fields|");
        let _ = writeln!(w, "        {}", output_fields(action));
        let _ = writeln!(w, "      end");
        let _ = writeln!(w, "    }},");
    }
    let _ = writeln!(w, "  }},");

    let _ = writeln!(w, "  pick_lists: {{");
    for lookup in lookups(manifests) {
        let name = lookup.name.clone();
        let path = lookup.list.trim_start_matches('/').to_owned();
        let _ = writeln!(w, "    {name}: lambda do |_connection|");
        let _ = writeln!(
            w,
            "      (get({}, sort: 'name', pageSize: 100)['items'] || []).map {{ |record| [record['name'], record['id']] }}",
            ruby_string(&path)
        );
        let _ = writeln!(w, "    end,");
        pick_lists.insert(lookup.key.clone(), name);
    }
    let _ = writeln!(w, "  }},");

    let _ = writeln!(w, "  triggers: {{");
    for trigger in manifests.triggers.values() {
        let (path, query) = trigger.list.split_once('?').unwrap_or((&trigger.list, ""));
        let fixed: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| format!("{}: {}", k, ruby_string(&v)))
            .collect();
        let fixed = if fixed.is_empty() {
            String::new()
        } else {
            format!(", {}", fixed.join(", "))
        };
        let dedup = if trigger.updated {
            "\"#{record['id']}@#{record['updatedAt']}\""
        } else {
            "record['id']"
        };
        let _ = writeln!(w, "    {}: {{", trigger.key);
        let _ = writeln!(w, "      title: {},", ruby_string(&trigger.label));
        let _ = writeln!(
            w,
            "      description: {},",
            ruby_string(&trigger.description)
        );
        let _ = writeln!(w, "      input_fields: lambda do |_object_definitions|");
        let _ = writeln!(
            w,
            "        [{{ name: 'since', label: 'When first started, this trigger picks up records from', type: 'timestamp', optional: true, sticky: true }}]"
        );
        let _ = writeln!(w, "      end,");
        let _ = writeln!(w, "      poll: lambda do |_connection, input, closure|");
        // Workato may give a stored position back as a time, which `to_s` would write as
        // `2026-12-05 08:37:12 -0800`: the position is read as a time and sent and stored as
        // ISO 8601 text.
        let _ = writeln!(
            w,
            "        since = (closure.presence || input['since'].presence || 1.hour.ago).to_time.utc.iso8601(3)"
        );
        let path = ruby_string(path.trim_start_matches('/'));
        if trigger.updated || trigger.list.contains('?') {
            poll_changes(w, &path, &fixed);
        } else {
            poll_new(w, &path);
        }
        let _ = writeln!(
            w,
            "        {{ events: records, next_poll: next_poll, can_poll_more: page['hasMore'] == true }}"
        );
        let _ = writeln!(w, "      end,");
        let _ = writeln!(w, "      dedup: lambda do |record|");
        let _ = writeln!(w, "        {dedup}");
        let _ = writeln!(w, "      end,");
        let _ = writeln!(
            w,
            "      webhook_subscribe: lambda do |webhook_url, _connection, _input, _recipe_id|"
        );
        let _ = writeln!(
            w,
            "        post('hooks', targetUrl: webhook_url, event: {})",
            ruby_string(&trigger.event)
        );
        let _ = writeln!(w, "      end,");
        let _ = writeln!(w, "      webhook_unsubscribe: lambda do |webhook|");
        let _ = writeln!(w, "        delete(\"hooks/#{{webhook['id']}}\")");
        let _ = writeln!(w, "      end,");
        let _ = writeln!(w, "      webhook_notification: lambda do |_input, payload|");
        let _ = writeln!(w, "        payload['data']");
        let _ = writeln!(w, "      end,");
        let _ = writeln!(w, "      output_fields: lambda do |object_definitions|");
        let _ = writeln!(w, "        object_definitions['{}']", trigger.key);
        let _ = writeln!(w, "      end,");
        let _ = writeln!(w, "      sample_output: lambda do |_connection, _input|");
        let _ = writeln!(w, "        {}", ruby(&trigger.sample));
        let _ = writeln!(w, "      end");
        let _ = writeln!(w, "    }},");
    }
    let _ = writeln!(w, "  }},");

    let _ = writeln!(w, "  actions: {{");
    for action in this_api(manifests) {
        let inputs: Vec<String> = fields(&action.input)
            .iter()
            .map(|f| input_field(f, &pick_lists))
            .collect();
        let _ = writeln!(w, "    {}: {{", action.key);
        let _ = writeln!(w, "      title: {},", ruby_string(&action.label));
        let _ = writeln!(
            w,
            "      description: {},",
            ruby_string(&action.description)
        );
        let _ = writeln!(w, "      input_fields: lambda do |_object_definitions|");
        let _ = writeln!(w, "        [");
        for input in &inputs {
            let _ = writeln!(w, "          {input},");
        }
        let _ = writeln!(w, "        ]");
        let _ = writeln!(w, "      end,");
        let _ = writeln!(w, "      execute: lambda do |_connection, input|");
        let _ = writeln!(w, "        {}", execute(action));
        let _ = writeln!(w, "      end,");
        let _ = writeln!(w, "      output_fields: lambda do |object_definitions|");
        let _ = writeln!(w, "        object_definitions['{}_output']", action.key);
        let _ = writeln!(w, "      end,");
        let _ = writeln!(w, "      sample_output: lambda do |_connection, _input|");
        let _ = writeln!(w, "        {}", sample_output(action));
        let _ = writeln!(w, "      end");
        let _ = writeln!(w, "    }},");
    }
    let _ = writeln!(w, "  }}");
    let _ = writeln!(w, "}}");
    Ok(out)
}

/// The connector's one file, by name.
pub fn files(
    manifests: &Manifests,
    version: &str,
) -> Result<BTreeMap<String, String>, ExportError> {
    let mut files = BTreeMap::new();
    files.insert("connector.rb".to_owned(), source(manifests, version)?);
    Ok(files)
}

pub fn write(manifests: &Manifests, version: &str, out: &Path) -> Result<(), ExportError> {
    super::write_files(out, &files(manifests, version)?)
}

/// The body of a new-record trigger's `poll`: records created since the position, oldest first,
/// the position moving to the last one's `createdAt`. An update never moves a record out of
/// this order, so none is skipped across pages; the position is inclusive and `dedup` drops
/// the record seen again at the edge.
fn poll_new(w: &mut String, path: &str) {
    let _ = writeln!(
        w,
        "        page = get({path}, createdSince: since, sort: 'createdAt', pageSize: 100)"
    );
    let _ = writeln!(w, "        records = page['items'] || []");
    let _ = writeln!(w, "        last = records.last");
    let _ = writeln!(
        w,
        "        next_poll = last ? last['createdAt'].to_time.utc.iso8601(3) : since"
    );
}

/// The body of a change trigger's `poll` (and of one that watches records entering a state):
/// records updated since the position, in `updatedAt` order, the position moving to the
/// `X-Sync-Watermark` the API answers with (API §2), which also holds back for writes still
/// committing.
fn poll_changes(w: &mut String, path: &str, fixed: &str) {
    let _ = writeln!(
        w,
        "        answer = get({path}, updatedSince: since, pageSize: 100{fixed}).after_response do |code, body, headers|"
    );
    let _ = writeln!(
        w,
        "          error(\"#{{code}}: #{{body}}\") if code.to_i >= 400"
    );
    let _ = writeln!(
        w,
        "          mark = (headers || {{}}).find {{ |name, _| name.to_s.downcase == 'x-sync-watermark' }}&.last"
    );
    let _ = writeln!(
        w,
        "          {{ 'page' => body, 'mark' => Array(mark).first }}"
    );
    let _ = writeln!(w, "        end");
    let _ = writeln!(w, "        page = answer['page'] || {{}}");
    let _ = writeln!(w, "        records = page['items'] || []");
    let _ = writeln!(w, "        next_poll = answer['mark'].presence || since");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_become_ruby() {
        assert_eq!(ruby_template("{{input.method}}", false), "input['method']");
        assert_eq!(
            relative(ruby_template("/customers/{{input.id}}", true)),
            "'customers/' + CGI.escape(input['id'].to_s).gsub('+', '%20')"
        );
        assert_eq!(
            ruby(&serde_json::json!({"a": [1, null, "it's"]})),
            "{ 'a' => [1, nil, 'it\\'s'] }"
        );
    }
}
