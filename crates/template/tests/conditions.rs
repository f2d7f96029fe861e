//! Parameters and conditions evaluated as CloudFormation evaluates them, for the local gateway's
//! `--parameter-overrides`.

use chat_template::{Context, Template};
use serde_yaml_ng::Value;

const TEMPLATE: &str = r#"
Parameters:
  Issuer: { Type: String, Default: "" }
  Stage: { Type: String, Default: dev }
Conditions:
  HasIssuer: !Not [!Equals [!Ref Issuer, ""]]
  IsProd: !Equals [prod, !Ref Stage]
  Strict: !And [!Condition HasIssuer, !Condition IsProd]
  Either: !Or [!Condition HasIssuer, !Condition IsProd]
  LongForm: { "Fn::Not": [{ "Condition": "IsProd" }] }
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          ISSUER: !Ref Issuer
          URL: !Sub "${Issuer}/keys/${Stage}"
          TABLE: !Ref Table
          MODE: !If [HasIssuer, token, demo]
          GONE: !If [HasIssuer, !Ref AWS::NoValue, kept]
"#;

fn context(overrides: &[(&str, &str)]) -> (Template, Context) {
    let template = Template::parse(TEMPLATE).unwrap();
    let overrides: Vec<(String, String)> = overrides.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    let context = Context::new(&template, &overrides).unwrap();
    (template, context)
}

#[test]
fn conditions_follow_the_defaults_and_the_overrides() {
    let (_, defaults) = context(&[]);
    assert!(!defaults.condition("HasIssuer") && !defaults.condition("IsProd"));
    assert!(!defaults.condition("Strict") && !defaults.condition("Either") && defaults.condition("LongForm"));

    let (_, both) = context(&[("Issuer", "https://issuer.example"), ("Stage", "prod")]);
    assert!(both.condition("HasIssuer") && both.condition("IsProd") && both.condition("Strict"));
    assert!(both.condition("Either") && !both.condition("LongForm"));
    assert!(!both.condition("Undeclared"), "an undeclared condition does not hold");
}

#[test]
fn the_environment_resolves_parameters_ifs_and_novalue_and_leaves_out_resources() {
    let (template, demo) = context(&[]);
    let env = template.environment("Fn", &demo);
    assert_eq!(env.get("MODE").map(String::as_str), Some("demo"));
    assert_eq!(env.get("GONE").map(String::as_str), Some("kept"));
    assert_eq!(env.get("URL").map(String::as_str), Some("/keys/dev"));
    assert!(!env.contains_key("TABLE"), "a resource's name exists only once deployed");

    let (template, token) = context(&[("Issuer", "https://issuer.example")]);
    let env = template.environment("Fn", &token);
    assert_eq!(env.get("MODE").map(String::as_str), Some("token"));
    assert!(!env.contains_key("GONE"), "AWS::NoValue removes the variable");
    assert_eq!(env.get("URL").map(String::as_str), Some("https://issuer.example/keys/dev"));
    assert_eq!(token.plain(&Value::String("plain".into())).as_deref(), Some("plain"));
}

#[test]
fn a_condition_that_refers_to_itself_is_an_error_naming_it() {
    let template =
        Template::parse("Conditions:\n  A: !Condition B\n  B: !Not [!Condition A]\nResources: {}\n").unwrap();
    let error = Context::new(&template, &[]).unwrap_err();
    assert!(error.to_string().contains("refers to itself"), "{error}");
}
