//! The variables a template reads at its top level (`trigger.name`, `steps.find.id`), so a
//! draft can be checked against samples before it runs: `{{trigger.nme}}` is flagged when the
//! trigger's sample has no `nme`. Inside `{{#each}}` and `{{#with}}` paths are relative to the
//! item and are not collected; `{{#if}}` and `{{#unless}}` keep the context and are.

use handlebars::Template;
use handlebars::template::{HelperTemplate, Parameter, TemplateElement};

use super::helpers;

/// The paths `text` reads at its top level, as written (`trigger.name`, `steps.a.items.[0]`).
/// Nothing for a template that does not parse (that is reported elsewhere).
pub fn variables(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    if !text.contains("{{") {
        return found;
    }
    if let Ok(template) = Template::compile(text) {
        in_template(&template, &mut found);
    }
    found
}

fn in_template(template: &Template, found: &mut Vec<String>) {
    for element in &template.elements {
        match element {
            TemplateElement::Expression(e) | TemplateElement::HtmlExpression(e) => {
                in_call(e, found)
            }
            TemplateElement::HelperBlock(block) => {
                in_call(block, found);
                let keeps_context =
                    matches!(&block.name, Parameter::Name(n) if n == "if" || n == "unless");
                if keeps_context {
                    block.template.iter().for_each(|t| in_template(t, found));
                    block.inverse.iter().for_each(|t| in_template(t, found));
                }
            }
            _ => {}
        }
    }
}

fn in_call(call: &HelperTemplate, found: &mut Vec<String>) {
    match &call.name {
        Parameter::Name(name) if call.params.is_empty() && helpers::find(name).is_none() => {
            found.push(name.clone())
        }
        other => in_parameter(other, found),
    }
    call.params.iter().for_each(|p| in_parameter(p, found));
    call.hash.values().for_each(|p| in_parameter(p, found));
}

fn in_parameter(parameter: &Parameter, found: &mut Vec<String>) {
    match parameter {
        Parameter::Path(handlebars::Path::Relative((_, raw))) => found.push(raw.clone()),
        Parameter::Subexpression(sub) => {
            if let TemplateElement::Expression(call) | TemplateElement::HtmlExpression(call) =
                sub.element.as_ref()
            {
                in_call(call, found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::variables;

    #[test]
    fn top_level_paths_are_found_in_expressions_helpers_and_conditions() {
        let found = variables(
            "Hi {{trigger.nme}} {{round (multiply trigger.hours steps.rate.value) 2}} \
             {{#if trigger.vip}}{{steps.a.b}}{{/if}}{{#each trigger.lines}}{{sku}}{{/each}}",
        );
        assert_eq!(
            found,
            [
                "trigger.nme",
                "trigger.hours",
                "steps.rate.value",
                "trigger.vip",
                "steps.a.b",
                "trigger.lines"
            ]
        );
        assert!(variables("plain text").is_empty());
        assert!(variables("{{#if}}").is_empty());
    }
}
