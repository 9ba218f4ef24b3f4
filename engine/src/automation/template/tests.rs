//! The template engine's own tests: parsing, the sole value, partials, the budget. Each
//! family of helpers has its tests in its file.

use serde_json::json;

use super::*;

fn data() -> Value {
    json!({"trigger": {"name": "Acme", "rate": 120, "tags": ["a", "b"], "createdAt": "2026-11-22T09:30:00Z", "email": null},
           "steps": {"project": {"id": "prj_1"}}})
}

#[test]
fn an_unclosed_variable_is_named_plainly() {
    assert_eq!(
        check("Project for {{trigger.name"),
        Err(TemplateError(
            "the template does not parse: a {{ is not closed with }}".into()
        ))
    );
    assert_eq!(check("{{{trigger.name}}}"), Ok(()));
}

#[test]
fn a_sole_variable_keeps_its_type() {
    assert_eq!(render("{{trigger.rate}}", &data()), Ok(json!(120)));
    assert_eq!(render("{{ trigger.tags }}", &data()), Ok(json!(["a", "b"])));
    assert_eq!(render("{{trigger.tags.[1]}}", &data()), Ok(json!("b")));
    assert_eq!(render("{{steps.project.id}}", &data()), Ok(json!("prj_1")));
    assert_eq!(render("plain", &data()), Ok(json!("plain")));
}

#[test]
fn text_templates_render_and_helpers_apply() {
    assert_eq!(
        render("Project for {{trigger.name}}", &data()),
        Ok(json!("Project for Acme"))
    );
    assert_eq!(render("{{upper trigger.name}}", &data()), Ok(json!("ACME")));
    assert_eq!(
        render("{{lower trigger.name}}!", &data()),
        Ok(json!("acme!"))
    );
    assert_eq!(
        render("{{default trigger.email \"none\"}}", &data()),
        Ok(json!("none"))
    );
    // `default` is the one place a missing variable is fine.
    assert_eq!(
        render("{{default trigger.nickname trigger.name}}", &data()),
        Ok(json!("Acme"))
    );
    assert_eq!(
        render("{{date trigger.createdAt \"%d.%m.%Y\"}}", &data()),
        Ok(json!("22.11.2026"))
    );
    assert_eq!(
        render("{{json trigger.tags}}", &data()),
        Ok(json!("[\"a\",\"b\"]"))
    );
}

#[test]
fn a_missing_variable_fails_with_its_path() {
    let e = render("{{trigger.nope}}", &data()).unwrap_err();
    assert!(e.0.contains("trigger.nope"), "{e}");
    let e = render("Hello {{trigger.nope}}", &data()).unwrap_err();
    assert!(e.0.contains("trigger.nope"), "{e}");
    let e = render_value(
        &json!({"name": "{{trigger.missing}}"}),
        &data(),
        "steps[0].input",
    )
    .unwrap_err();
    assert_eq!(e.0, "steps[0].input.name");
}

#[test]
fn templates_that_do_not_parse_are_found() {
    assert!(check("{{trigger.name").is_err());
    assert!(check("{{#if x}}no end").is_err());
    assert!(check("{{trigger.name}} ok").is_ok());
    let e = check_value(&json!({"a": ["ok", "{{bad"]}), "input").unwrap_err();
    assert_eq!(e.0, "input.a[1]");
}

#[test]
fn partials_and_decorators_are_refused_however_written() {
    for text in [
        "{{#*inline \"p\"}}x{{> p}}{{/inline}}{{> p}}",
        "{{> p}}",
        "{{~> p~}}",
        "{{ > p }}",
        "{{#> layout}}x{{/layout}}",
        "{{> (lookup trigger \"name\")}}",
        "{{#if trigger.name}}{{> p}}{{/if}}",
        "{{#each trigger.tags}}{{else}}{{#*inline \"q\"}}y{{/inline}}{{/each}}",
        "{{*decorator}}",
    ] {
        let checked = check(text).unwrap_err();
        assert!(checked.0.contains("not available"), "{text}: {checked}");
        // Rendering refuses too, so a template stored before the check cannot recurse.
        let rendered = render(text, &data()).unwrap_err();
        assert!(rendered.0.contains("not available"), "{text}: {rendered}");
    }
}

#[test]
fn loops_and_conditions_still_render() {
    assert_eq!(
        render(
            "{{#each trigger.tags}}{{@index}}={{this}};{{/each}}",
            &data()
        ),
        Ok(json!("0=a;1=b;"))
    );
    assert_eq!(
        render(
            "{{#if trigger.email}}e{{else if trigger.name}}n{{else}}-{{/if}}",
            &data()
        ),
        Ok(json!("n"))
    );
    assert_eq!(
        render("{{#with trigger}}{{name}}{{/with}}", &data()),
        Ok(json!("Acme"))
    );
    assert_eq!(
        render("{{#each trigger.tags as |t|}}{{t}}{{/each}}", &data()),
        Ok(json!("ab"))
    );
}

#[test]
fn loops_within_loops_stop_at_the_block_budget() {
    let items: Vec<Value> = (0..500).map(|i| json!(i)).collect();
    let data = json!({"trigger": {"items": items}});
    let text = "{{#each trigger.items}}{{#each ../trigger.items}}{{#each ../../trigger.items}}{{/each}}{{/each}}{{/each}}";
    let e = render(text, &data).unwrap_err();
    assert!(e.0.contains("more than 1000000 steps"), "{e}");
}

#[test]
fn output_stops_at_one_mebibyte_for_the_whole_input() {
    let items: Vec<Value> = (0..200).map(|i| json!(i)).collect();
    let data = json!({"trigger": {"items": items, "text": "x".repeat(4096)}});
    let text =
        "{{#each trigger.items}}{{#each ../trigger.items}}{{../../trigger.text}}{{/each}}{{/each}}";
    let e = render(text, &data).unwrap_err();
    assert_eq!(e.0, OUTPUT_EXCEEDED);
    // Many fields, each under the limit, share one budget.
    let field = "{{#each trigger.items}}{{../trigger.text}}{{/each}}";
    let input = json!({"a": field, "b": field});
    let (path, e) = render_value(&input, &data, "steps[0].input").unwrap_err();
    assert_eq!(path, "steps[0].input.b");
    assert_eq!(e.0, OUTPUT_EXCEEDED);
    // Copies of a value count too.
    let big = json!({"trigger": {"text": "y".repeat(300_000)}});
    let copies = json!([
        "{{trigger.text}}",
        "{{trigger.text}}",
        "{{trigger.text}}",
        "{{trigger}}"
    ]);
    let (path, e) = render_value(&copies, &big, "input").unwrap_err();
    assert_eq!((path.as_str(), e.0.as_str()), ("input[3]", OUTPUT_EXCEEDED));
}

#[test]
fn only_real_templates_need_the_engine() {
    assert!(!needs_engine(
        &json!({"a": "plain", "b": "{{trigger.name}}", "c": [1, "{{ x }}"]})
    ));
    assert!(needs_engine(&json!({"a": ["Hi {{trigger.name}}"]})));
}

#[test]
fn log_is_not_a_helper() {
    assert!(render("{{log trigger.name}}", &data()).is_err());
}

#[test]
fn helpers_inside_helpers_stay_within_the_output_budget() {
    // Each `json` escapes the one inside it: the text doubles at every level.
    let bomb = format!(
        "{{{{json {}(json trigger.text){}}}}}",
        "(json ".repeat(7),
        ")".repeat(7)
    );
    let quotes = json!({"trigger": {"text": "\"".repeat(20_000)}});
    let e = render(&bomb, &quotes).unwrap_err();
    assert_eq!(e.0, OUTPUT_EXCEEDED);
    let deeper = format!("{{{{json {}x{}}}}}", "(json ".repeat(9), ")".repeat(9));
    assert!(check(&deeper).unwrap_err().0.contains("subexpressions"));
    // Ordinary nesting still works.
    assert_eq!(
        render("{{upper (lower trigger.name)}}", &data()),
        Ok(json!("ACME"))
    );
}

#[test]
fn expressions_that_print_nothing_still_count_as_work() {
    let items: Vec<Value> = (0..3_000).map(|i| json!(i)).collect();
    let data = json!({"trigger": {"items": items, "empty": ""}});
    let body = "{{../trigger.empty}}".repeat(400);
    let text = format!("{{{{#each trigger.items}}}}{body}{{{{/each}}}}");
    let e = render(&text, &data).unwrap_err();
    assert!(e.0.contains("more than 1000000 steps"), "{e}");
}

#[test]
fn a_sole_helper_call_yields_its_value() {
    assert_eq!(
        render("{{split \"a,b\" \",\"}}", &data()),
        Ok(json!(["a", "b"]))
    );
    assert_eq!(render("{{ length trigger.tags }}", &data()), Ok(json!(2)));
    assert_eq!(render("{{gt trigger.rate 100}}", &data()), Ok(json!(true)));
    assert_eq!(render("{{first trigger.email}}", &data()), Ok(Value::Null));
    assert_eq!(
        render_optional("{{multiply trigger.rate \"1.5\"}}", &data()),
        Ok(Some(json!(180)))
    );
    // With anything around it, the call prints as text; the existing helpers still give text.
    assert_eq!(
        render("{{length trigger.tags}} tags", &data()),
        Ok(json!("2 tags"))
    );
    assert_eq!(render("{{upper trigger.name}}", &data()), Ok(json!("ACME")));
    // A helper's name alone is a call, not a variable, and runs the engine.
    assert!(needs_engine(&json!("{{split}}")));
    assert!(!needs_engine(&json!("{{splits}}")));
}

#[test]
fn a_kept_value_counts_against_the_output_budget() {
    let big = json!({"trigger": {"text": "y".repeat(300_000)}});
    let input = json!([
        "{{split trigger.text \"-\"}}",
        "{{split trigger.text \"-\"}}",
        "{{split trigger.text \"-\"}}",
        "{{split trigger.text \"-\"}}"
    ]);
    let (path, e) = render_value(&input, &big, "input").unwrap_err();
    assert_eq!((path.as_str(), e.0.as_str()), ("input[3]", OUTPUT_EXCEEDED));
}

#[test]
fn the_mapping_helpers_table_in_the_docs_tells_the_truth() {
    let docs = include_str!("../../../../docs/flows.md");
    let data = json!({"trigger": {"name": "  Acme Corp  ", "amount": 1250, "price": "12.50",
        "tags": "a,b,,c", "createdAt": "2026-11-22T09:30:00Z", "day": "2026-01-31", "email": null,
        "lines": [{"sku": "A", "qty": 2, "price": "0.10"}, {"sku": "B", "qty": 1, "price": "0.20"},
                  {"sku": "C", "qty": 3, "price": null}]}});
    let table = docs
        .split("### Mapping helpers")
        .nth(1)
        .expect("the section is there");
    let mut seen = 0;
    for row in table.lines().take_while(|l| !l.starts_with("- ")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let [_, _, example, result] = cells.as_slice() else {
            continue;
        };
        let (Some(example), Some(result)) = (
            example.strip_prefix('`').and_then(|e| e.strip_suffix('`')),
            result
                .trim_end_matches(" |")
                .strip_prefix('`')
                .and_then(|r| r.strip_suffix('`')),
        ) else {
            continue;
        };
        let expected: Value = serde_json::from_str(result).expect(result);
        assert_eq!(render(example, &data), Ok(expected), "{example}");
        seen += 1;
    }
    assert!(seen >= 35, "{seen} examples read");
}
