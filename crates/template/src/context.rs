//! A template's parameters and conditions, evaluated for one set of parameter values (the
//! defaults, overridden as `sam deploy --parameter-overrides Key=Value` overrides them), and
//! property values resolved with them: `!If`, `!Ref` to a parameter, `!Equals`, `!Not`, `!And`,
//! `!Or`, `!Condition`, `!Sub` over parameters, and `AWS::NoValue`.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;
use serde_yaml_ng::value::{Tag, TaggedValue};

use crate::{Template, TemplateError};

/// Parameter values and the conditions they decide.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    parameters: BTreeMap<String, String>,
    conditions: BTreeMap<String, bool>,
}

/// An intrinsic's name and argument, in either form (`!If x` or `Fn::If: x`).
fn intrinsic(value: &Value) -> Option<(String, &Value)> {
    match value {
        Value::Tagged(tagged) => {
            let name = tagged.tag.to_string();
            let name = name.trim_start_matches('!');
            Some((
                if name == "Ref" || name == "Condition" { name.to_owned() } else { format!("Fn::{name}") },
                &tagged.value,
            ))
        }
        Value::Mapping(mapping) if mapping.len() == 1 => {
            let (key, argument) = mapping.iter().next()?;
            let name = key.as_str()?;
            (name == "Ref" || name == "Condition" || name.starts_with("Fn::")).then(|| (name.to_owned(), argument))
        }
        _ => None,
    }
}

fn bad(name: &str, problem: impl Into<String>) -> TemplateError {
    TemplateError::Condition { name: name.to_owned(), problem: problem.into() }
}

impl Context {
    /// Evaluates `template`'s conditions with its parameters' defaults, overridden by `overrides`
    /// (`Key=Value`). An override for a parameter the template does not declare is an error.
    pub fn new(template: &Template, overrides: &[(String, String)]) -> Result<Self, TemplateError> {
        let mut parameters: BTreeMap<String, String> =
            template.parameters.iter().map(|(name, spec)| (name.clone(), crate::render(&spec["Default"]))).collect();
        for (name, value) in overrides {
            if !parameters.contains_key(name) {
                let known = parameters.keys().cloned().collect::<Vec<_>>().join(", ");
                return Err(TemplateError::UnknownParameter { name: name.clone(), known });
            }
            parameters.insert(name.clone(), value.clone());
        }
        let mut context = Self { parameters, conditions: BTreeMap::new() };
        for name in template.conditions.keys() {
            let value = context.condition_value(template, name, &mut Vec::new())?;
            context.conditions.insert(name.clone(), value);
        }
        Ok(context)
    }

    fn condition_value(&self, template: &Template, name: &str, seen: &mut Vec<String>) -> Result<bool, TemplateError> {
        if let Some(value) = self.conditions.get(name) {
            return Ok(*value);
        }
        if seen.iter().any(|other| other == name) {
            return Err(bad(name, "refers to itself"));
        }
        seen.push(name.to_owned());
        let definition = template.conditions.get(name).ok_or_else(|| bad(name, "is not declared under Conditions"))?;
        let value = self.boolean(template, name, definition, seen)?;
        seen.pop();
        Ok(value)
    }

    fn boolean(
        &self,
        template: &Template,
        name: &str,
        value: &Value,
        seen: &mut Vec<String>,
    ) -> Result<bool, TemplateError> {
        let (function, argument) =
            intrinsic(value).ok_or_else(|| bad(name, "must be Fn::Equals, Not, And, Or or Condition"))?;
        let items = || argument.as_sequence().map(Vec::as_slice).unwrap_or_default();
        match function.as_str() {
            "Fn::Equals" => match items() {
                [left, right] => Ok(self.text(left) == self.text(right)),
                _ => Err(bad(name, "Fn::Equals takes two values")),
            },
            "Fn::Not" => match items() {
                [inner] => Ok(!self.boolean(template, name, inner, seen)?),
                _ => Err(bad(name, "Fn::Not takes one condition")),
            },
            "Fn::And" => {
                items().iter().try_fold(true, |all, inner| Ok(all & self.boolean(template, name, inner, seen)?))
            }
            "Fn::Or" => {
                items().iter().try_fold(false, |any, inner| Ok(any | self.boolean(template, name, inner, seen)?))
            }
            "Condition" => {
                let other = argument.as_str().ok_or_else(|| bad(name, "Condition takes a condition's name"))?;
                self.condition_value(template, other, seen)
            }
            other => Err(bad(name, format!("uses {other}, which this reader cannot evaluate"))),
        }
    }

    /// A scalar as text, with `!Ref Parameter` replaced by the parameter's value.
    fn text(&self, value: &Value) -> String {
        match intrinsic(value) {
            Some((function, Value::String(name))) if function == "Ref" => {
                self.parameters.get(name).cloned().unwrap_or_else(|| format!("${{{name}}}"))
            }
            _ => crate::render(value),
        }
    }

    /// Whether a condition holds; an undeclared one does not.
    pub fn condition(&self, name: &str) -> bool {
        self.conditions.get(name).copied().unwrap_or(false)
    }

    /// A parameter's value.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// A property value with `!If` decided, parameters substituted (`!Ref P`, `${P}` in `!Sub`)
    /// and `AWS::NoValue` removed (`None`). References to resources stay as they are.
    pub fn resolve(&self, value: &Value) -> Option<Value> {
        match intrinsic(value) {
            Some((function, argument)) if function == "Fn::If" => match argument.as_sequence().map(Vec::as_slice) {
                Some([Value::String(condition), then, otherwise]) => {
                    self.resolve(if self.condition(condition) { then } else { otherwise })
                }
                _ => Some(value.clone()),
            },
            Some((function, Value::String(name))) if function == "Ref" => {
                if name == "AWS::NoValue" {
                    None
                } else if let Some(parameter) = self.parameters.get(name) {
                    Some(Value::String(parameter.clone()))
                } else {
                    Some(value.clone())
                }
            }
            Some((function, Value::String(template))) if function == "Fn::Sub" => {
                let substituted = self
                    .parameters
                    .iter()
                    .fold(template.clone(), |text, (name, parameter)| text.replace(&format!("${{{name}}}"), parameter));
                Some(if substituted.contains("${") {
                    Value::Tagged(Box::new(TaggedValue { tag: Tag::new("Sub"), value: Value::String(substituted) }))
                } else {
                    Value::String(substituted)
                })
            }
            _ => match value {
                Value::Mapping(mapping) => Some(Value::Mapping(
                    mapping
                        .iter()
                        .filter_map(|(key, item)| self.resolve(item).map(|item| (key.clone(), item)))
                        .collect(),
                )),
                Value::Sequence(items) => {
                    Some(Value::Sequence(items.iter().filter_map(|item| self.resolve(item)).collect()))
                }
                other => Some(other.clone()),
            },
        }
    }

    /// A resolved value as plain text, if it is one (not a reference to a resource).
    pub fn plain(&self, value: &Value) -> Option<String> {
        match self.resolve(value)? {
            Value::String(text) => Some(text),
            Value::Bool(flag) => Some(flag.to_string()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    }
}
