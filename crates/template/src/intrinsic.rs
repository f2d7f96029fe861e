//! CloudFormation intrinsic functions, in their short (`!Sub`) and long (`Fn::Sub`) forms,
//! reduced to what the reader needs: the names they refer to.

use serde_yaml_ng::Value;

/// The function name and argument of an intrinsic, whichever form it is written in.
fn intrinsic(value: &Value) -> Option<(&str, &Value)> {
    match value {
        Value::Tagged(tagged) => {
            let name = tagged.tag.to_string();
            let name = name.trim_start_matches('!');
            ["Ref", "Sub", "GetAtt", "Join"]
                .into_iter()
                .find(|known| *known == name)
                .map(|known| (known, &tagged.value))
        }
        Value::Mapping(mapping) if mapping.len() == 1 => {
            let (key, argument) = mapping.iter().next()?;
            let name = key.as_str()?;
            let name = if name == "Ref" { name } else { name.strip_prefix("Fn::")? };
            Some((name, argument))
        }
        _ => None,
    }
}

/// Renders a value as text, intrinsics in `${...}` form: `!GetAtt T.Arn` → `${T.Arn}`,
/// `!Ref X` → `${X}`, `!Sub s` → `s`, `!Join [d, [a, b]]` → `a{d}b`.
pub fn render(value: &Value) -> String {
    match intrinsic(value) {
        Some(("Ref", Value::String(name))) => format!("${{{name}}}"),
        Some(("GetAtt", Value::String(path))) => format!("${{{path}}}"),
        Some(("GetAtt", Value::Sequence(parts))) => {
            format!("${{{}}}", parts.iter().map(render).collect::<Vec<_>>().join("."))
        }
        Some(("Sub", Value::String(template))) => template.clone(),
        Some(("Sub", Value::Sequence(parts))) => parts.first().map(render).unwrap_or_default(),
        Some(("Join", Value::Sequence(parts))) => match parts.as_slice() {
            [Value::String(delimiter), Value::Sequence(items)] => {
                items.iter().map(render).collect::<Vec<_>>().join(delimiter)
            }
            _ => String::new(),
        },
        _ => match value {
            Value::String(text) => text.clone(),
            Value::Bool(flag) => flag.to_string(),
            Value::Number(number) => number.to_string(),
            _ => String::new(),
        },
    }
}

/// The names referred to as `${Name}` or `${Name.Attribute}` in rendered text.
fn references(text: &str) -> impl Iterator<Item = &str> {
    text.split("${").skip(1).filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
}

/// `!Ref X` → `X`.
pub(crate) fn reference(value: &Value) -> Option<String> {
    match intrinsic(value)? {
        ("Ref", Value::String(name)) => Some(name.clone()),
        _ => None,
    }
}

/// `integrations/${X}` → `X`.
pub(crate) fn integration_of_target(target: &Value) -> Option<String> {
    let rendered = render(target);
    let name = rendered.strip_prefix("integrations/${")?.strip_suffix('}')?;
    (!name.contains('.')).then(|| name.to_owned())
}

/// `arn:...:lambda:path/2015-03-31/functions/${F.Arn}/invocations` → `F`.
pub(crate) fn function_of_uri(uri: &Value) -> Option<String> {
    let rendered = render(uri);
    if !rendered.ends_with("/invocations") {
        return None;
    }
    references(&rendered).find_map(|name| name.strip_suffix(".Arn")).map(str::to_owned)
}
