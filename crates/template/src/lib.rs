//! Reads the SAM `template.yaml`: the WebSocket API, its routes and the functions behind them,
//! the functions' IAM statements and environment, and the tables (by logical id).
//!
//! The template is the single description of the deployed system. The local gateway takes its
//! routes from here instead of repeating them, and the tests check the code against it.

mod context;
mod intrinsic;
mod specs;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_yaml_ng::Value;

pub use context::Context;
pub use intrinsic::render;
pub use specs::{
    AuthorizerSpec, FunctionSpec, IndexSpec, PermissionSpec, RouteResponseSpec, RouteSpec, StageThrottling, Statement,
    TableSpec, Throttle, WebSocketApi,
};

/// The template could not be read or does not describe what this project expects.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}; run from the project root or pass the template's path")]
    Io {
        /// The path that was tried.
        path: String,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML, or not a CloudFormation template.
    #[error("template.yaml is not a valid template: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// A resource lacks a property, or has one this reader cannot understand.
    #[error("resource {resource}: property {property} {problem}")]
    Property {
        /// The resource's logical id.
        resource: String,
        /// The property's path within the resource, e.g. `Properties.Target`.
        property: &'static str,
        /// What is wrong, as the end of a sentence.
        problem: String,
    },
    /// A condition cannot be evaluated.
    #[error("condition {name} {problem}")]
    Condition {
        /// The condition's name.
        name: String,
        /// What is wrong, as the end of a sentence.
        problem: String,
    },
    /// A parameter override names a parameter the template does not declare.
    #[error("the template has no parameter {name}; it has: {known}")]
    UnknownParameter {
        /// The name given.
        name: String,
        /// The parameters it does declare.
        known: String,
    },
    /// No resource, or more than one, of a type that must appear exactly once.
    #[error("the template must declare exactly one {kind}{detail}; found {found}")]
    Count {
        /// The resource type.
        kind: &'static str,
        /// A qualification of the type, e.g. ` with ProtocolType WEBSOCKET`.
        detail: &'static str,
        /// How many were found.
        found: usize,
    },
}

type Result<T> = std::result::Result<T, TemplateError>;

/// SAM's WebSocket API resource type.
const SERVERLESS_WEBSOCKET_API: &str = "AWS::Serverless::WebSocketApi";

/// A parsed template.
#[derive(Debug, Deserialize)]
pub struct Template {
    #[serde(rename = "Parameters", default)]
    parameters: BTreeMap<String, Value>,
    #[serde(rename = "Conditions", default)]
    conditions: BTreeMap<String, Value>,
    #[serde(rename = "Resources")]
    resources: BTreeMap<String, Resource>,
}

/// One resource of the template, as written.
#[derive(Debug, Deserialize)]
pub struct Resource {
    /// The resource type, e.g. `AWS::ApiGatewayV2::Route`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The `Properties` mapping.
    #[serde(rename = "Properties", default)]
    pub properties: Value,
    /// The `Metadata` mapping.
    #[serde(rename = "Metadata", default)]
    pub metadata: Value,
    /// The condition the resource exists under, if any.
    #[serde(rename = "Condition", default)]
    pub condition: Option<String>,
}

fn problem(resource: &str, property: &'static str, problem: impl Into<String>) -> TemplateError {
    TemplateError::Property { resource: resource.to_owned(), property, problem: problem.into() }
}

fn text<'a>(value: &'a Value, resource: &str, property: &'static str) -> Result<&'a str> {
    match value {
        Value::String(text) => Ok(text),
        Value::Null => Err(problem(resource, property, "is missing")),
        _ => Err(problem(resource, property, "must be a plain string")),
    }
}

fn list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Sequence(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        single => vec![single],
    }
}

impl Template {
    /// Reads and parses a template file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| TemplateError::Io { path: path.display().to_string(), source })?;
        Self::parse(&text)
    }

    /// Parses a template's text.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(serde_yaml_ng::from_str(text)?)
    }

    /// A resource by logical id.
    pub fn resource_named(&self, id: &str) -> Option<&Resource> {
        self.resources.get(id)
    }

    /// Every resource of a type, by logical id.
    pub fn resources_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a str, &'a Resource)> + 'a {
        self.resources.iter().filter(move |(_, resource)| resource.kind == kind).map(|(id, r)| (id.as_str(), r))
    }

    fn resource(&self, id: &str, kind: &str, referrer: &str, property: &'static str) -> Result<&Resource> {
        match self.resources.get(id) {
            Some(resource) if resource.kind == kind => Ok(resource),
            Some(resource) => {
                Err(problem(referrer, property, format!("names {id}, a {}, not a {kind}", resource.kind)))
            }
            None => Err(problem(referrer, property, format!("names {id}, which the template does not declare"))),
        }
    }

    /// The one WebSocket API: an `AWS::ApiGatewayV2::Api` with `ProtocolType: WEBSOCKET`, or
    /// SAM's `AWS::Serverless::WebSocketApi`.
    pub fn websocket_api(&self) -> Result<WebSocketApi> {
        let raw = self
            .resources_of("AWS::ApiGatewayV2::Api")
            .filter(|(_, api)| api.properties["ProtocolType"].as_str() == Some("WEBSOCKET"));
        let apis: Vec<_> = raw.chain(self.resources_of(SERVERLESS_WEBSOCKET_API)).collect();
        let [(id, api)] = apis[..] else {
            return Err(TemplateError::Count {
                kind: "WebSocket API",
                detail: " (AWS::ApiGatewayV2::Api with ProtocolType WEBSOCKET, or AWS::Serverless::WebSocketApi)",
                found: apis.len(),
            });
        };
        let expression = text(&api.properties["RouteSelectionExpression"], id, "Properties.RouteSelectionExpression")?;
        Ok(WebSocketApi { logical_id: id.to_owned(), route_selection_expression: expression.to_owned() })
    }

    /// `!GetAtt F.Arn` (or `!Sub ${F.Arn}`) → `F`, which must be a function.
    fn function_of_arn(&self, value: &Value, referrer: &str, property: &'static str) -> Result<String> {
        let rendered = render(value);
        let function = rendered
            .strip_prefix("${")
            .and_then(|rest| rest.strip_suffix(".Arn}"))
            .ok_or_else(|| problem(referrer, property, "must be !GetAtt SomeFunction.Arn"))?;
        self.resource(function, "AWS::Serverless::Function", referrer, property)?;
        Ok(function.to_owned())
    }

    /// The routes of SAM `AWS::Serverless::WebSocketApi` resources, named as SAM names what it generates.
    fn serverless_routes(&self) -> Result<Vec<RouteSpec>> {
        let mut routes = Vec::new();
        for (api, resource) in self.resources_of(SERVERLESS_WEBSOCKET_API) {
            let Value::Mapping(specs) = &resource.properties["Routes"] else {
                return Err(problem(api, "Properties.Routes", "must map route keys to {FunctionArn: ...}"));
            };
            for (key, spec) in specs {
                let key =
                    key.as_str().ok_or_else(|| problem(api, "Properties.Routes", "has a key that is not text"))?;
                let function = self.function_of_arn(&spec["FunctionArn"], api, "Properties.Routes.FunctionArn")?;
                let base = format!("{api}{}", key.chars().filter(char::is_ascii_alphanumeric).collect::<String>());
                routes.push(RouteSpec {
                    logical_id: format!("{base}Route"),
                    key: key.to_owned(),
                    integration: format!("{base}Integration"),
                    function,
                    response_selection: None,
                });
            }
        }
        Ok(routes)
    }

    /// Every route, with the function its integration invokes.
    pub fn routes(&self) -> Result<Vec<RouteSpec>> {
        let mut routes: Vec<RouteSpec> = self
            .resources_of("AWS::ApiGatewayV2::Route")
            .map(|(id, route)| self.route(id, route))
            .collect::<Result<_>>()?;
        routes.extend(self.serverless_routes()?);
        Ok(routes)
    }

    fn route(&self, id: &str, route: &Resource) -> Result<RouteSpec> {
        let key = text(&route.properties["RouteKey"], id, "Properties.RouteKey")?;
        let target = &route.properties["Target"];
        let integration = intrinsic::integration_of_target(target)
            .ok_or_else(|| problem(id, "Properties.Target", "must be !Sub integrations/${SomeIntegration}"))?;
        let resource = self.resource(&integration, "AWS::ApiGatewayV2::Integration", id, "Properties.Target")?;
        let uri = &resource.properties["IntegrationUri"];
        let function = intrinsic::function_of_uri(uri).ok_or_else(|| {
            problem(
                &integration,
                "Properties.IntegrationUri",
                "must be !Sub arn:...:lambda:path/2015-03-31/functions/${SomeFunction.Arn}/invocations",
            )
        })?;
        self.resource(&function, "AWS::Serverless::Function", &integration, "Properties.IntegrationUri")?;
        let response_selection = match &route.properties["RouteResponseSelectionExpression"] {
            Value::Null => None,
            expression => Some(text(expression, id, "Properties.RouteResponseSelectionExpression")?.to_owned()),
        };
        Ok(RouteSpec { logical_id: id.to_owned(), key: key.to_owned(), integration, function, response_selection })
    }

    /// The WebSocket stage's throttling under `context`'s parameters (none without an
    /// `AWS::ApiGatewayV2::Stage`). A setting with only one of the two limits leaves the other
    /// at API Gateway's account-level default (10,000 a second, bursts of 5,000).
    pub fn stage_throttling(&self, context: &Context) -> Result<StageThrottling> {
        let Some((stage, resource)) = self.resources_of("AWS::ApiGatewayV2::Stage").next() else {
            return Ok(StageThrottling::default());
        };
        let properties = context.resolve(&resource.properties).unwrap_or(Value::Null);
        let throttle = |settings: &Value, property: &'static str| -> Result<Option<Throttle>> {
            let number = |name: &str| -> Result<Option<f64>> {
                match &settings[name] {
                    Value::Null => Ok(None),
                    value => context
                        .plain(value)
                        .and_then(|text| text.parse::<f64>().ok())
                        .filter(|number| *number >= 0.0)
                        .map(Some)
                        .ok_or_else(|| problem(stage, property, format!("{name} must be a number, 0 or more"))),
                }
            };
            let (burst, rate) = (number("ThrottlingBurstLimit")?, number("ThrottlingRateLimit")?);
            Ok((burst.is_some() || rate.is_some())
                .then(|| Throttle { burst: burst.unwrap_or(5_000.0) as u32, rate: rate.unwrap_or(10_000.0) }))
        };
        let default = throttle(&properties["DefaultRouteSettings"], "Properties.DefaultRouteSettings")?;
        let mut routes = BTreeMap::new();
        if let Value::Mapping(settings) = &properties["RouteSettings"] {
            for (key, settings) in settings {
                let key = key
                    .as_str()
                    .ok_or_else(|| problem(stage, "Properties.RouteSettings", "has a key that is not text"))?;
                if let Some(limit) = throttle(settings, "Properties.RouteSettings")? {
                    routes.insert(key.to_owned(), limit);
                }
            }
        }
        Ok(StageThrottling { default, routes })
    }

    /// Every route response, with the route it belongs to.
    pub fn route_responses(&self) -> Result<Vec<RouteResponseSpec>> {
        self.resources_of("AWS::ApiGatewayV2::RouteResponse")
            .map(|(id, response)| {
                let route = intrinsic::reference(&response.properties["RouteId"])
                    .ok_or_else(|| problem(id, "Properties.RouteId", "must be !Ref SomeRoute"))?;
                self.resource(&route, "AWS::ApiGatewayV2::Route", id, "Properties.RouteId")?;
                let key = text(&response.properties["RouteResponseKey"], id, "Properties.RouteResponseKey")?;
                Ok(RouteResponseSpec { logical_id: id.to_owned(), route, key: key.to_owned() })
            })
            .collect()
    }

    /// The authorizer on the `$connect` route under `context`'s parameters, if the route has one
    /// (`AuthorizationType: CUSTOM` and an `AuthorizerId`).
    pub fn connect_authorizer(&self, context: &Context) -> Result<Option<AuthorizerSpec>> {
        if let Some((api, resource)) = self.resources_of(SERVERLESS_WEBSOCKET_API).next() {
            return self.serverless_authorizer(api, resource, context);
        }
        let Some((route_id, route)) = self
            .resources_of("AWS::ApiGatewayV2::Route")
            .find(|(_, route)| route.properties["RouteKey"].as_str() == Some("$connect"))
        else {
            return Ok(None);
        };
        let kind = context.plain(&route.properties["AuthorizationType"]).unwrap_or_else(|| "NONE".to_owned());
        match kind.as_str() {
            "NONE" => return Ok(None),
            "CUSTOM" => {}
            other => {
                return Err(problem(
                    route_id,
                    "Properties.AuthorizationType",
                    format!("is {other}; the local gateway runs NONE or CUSTOM"),
                ));
            }
        }
        let id = context
            .resolve(&route.properties["AuthorizerId"])
            .map(|value| render(&value))
            .and_then(|text| text.strip_prefix("${").and_then(|rest| rest.strip_suffix('}')).map(str::to_owned))
            .ok_or_else(|| {
                problem(
                    route_id,
                    "Properties.AuthorizerId",
                    "must be !Ref SomeAuthorizer when AuthorizationType is CUSTOM",
                )
            })?;
        let authorizer = self.resource(&id, "AWS::ApiGatewayV2::Authorizer", route_id, "Properties.AuthorizerId")?;
        if authorizer.condition.as_deref().is_some_and(|condition| !context.condition(condition)) {
            return Err(problem(
                route_id,
                "Properties.AuthorizerId",
                format!("names {id}, whose condition does not hold"),
            ));
        }
        let function = intrinsic::function_of_uri(&authorizer.properties["AuthorizerUri"]).ok_or_else(|| {
            problem(
                &id,
                "Properties.AuthorizerUri",
                "must be !Sub arn:...:lambda:path/2015-03-31/functions/${SomeFunction.Arn}/invocations",
            )
        })?;
        self.resource(&function, "AWS::Serverless::Function", &id, "Properties.AuthorizerUri")?;
        let identity_sources = list(&authorizer.properties["IdentitySource"]).into_iter().map(render).collect();
        Ok(Some(AuthorizerSpec { logical_id: id, function, identity_sources }))
    }

    /// SAM's `Auth` block: `AuthType: CUSTOM` with `AuthArn` and optional `IdentitySource`.
    fn serverless_authorizer(
        &self,
        api: &str,
        resource: &Resource,
        context: &Context,
    ) -> Result<Option<AuthorizerSpec>> {
        let Some(auth) = context.resolve(&resource.properties["Auth"]).filter(|auth| !auth.is_null()) else {
            return Ok(None);
        };
        match auth["AuthType"].as_str() {
            None | Some("NONE") => Ok(None),
            Some("CUSTOM") => {
                let function = self.function_of_arn(&auth["AuthArn"], api, "Properties.Auth.AuthArn")?;
                let identity_sources = list(&auth["IdentitySource"]).into_iter().map(render).collect();
                Ok(Some(AuthorizerSpec { logical_id: format!("{api}ConnectAuthorizer"), function, identity_sources }))
            }
            Some(other) => Err(problem(
                api,
                "Properties.Auth.AuthType",
                format!("is {other}; the local gateway runs NONE or CUSTOM"),
            )),
        }
    }

    /// A function's environment variables whose values `context` resolves to text; those that
    /// name resources (a table's name, say) exist only once deployed and are left out.
    pub fn environment(&self, function: &str, context: &Context) -> BTreeMap<String, String> {
        let Some(resource) = self.resources.get(function) else { return BTreeMap::new() };
        match &resource.properties["Environment"]["Variables"] {
            Value::Mapping(variables) => variables
                .iter()
                .filter_map(|(name, value)| Some((name.as_str()?.to_owned(), context.plain(value)?)))
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    /// Every `AWS::Serverless::Function`.
    pub fn functions(&self) -> Vec<FunctionSpec> {
        self.resources_of("AWS::Serverless::Function").map(|(id, function)| function_spec(id, function)).collect()
    }

    /// Every `AWS::Lambda::Permission`.
    pub fn permissions(&self) -> Vec<PermissionSpec> {
        self.resources_of("AWS::Lambda::Permission")
            .map(|(id, permission)| {
                let properties = &permission.properties;
                PermissionSpec {
                    logical_id: id.to_owned(),
                    function: render(&properties["FunctionName"])
                        .trim_start_matches("${")
                        .trim_end_matches('}')
                        .to_owned(),
                    principal: render(&properties["Principal"]),
                    source_arn: properties.get("SourceArn").map(render),
                }
            })
            .collect()
    }

    /// The DynamoDB table declared as `logical_id`.
    pub fn table(&self, logical_id: &str) -> Result<TableSpec> {
        let Some(table) = self.resources.get(logical_id).filter(|resource| resource.kind == "AWS::DynamoDB::Table")
        else {
            return Err(problem(logical_id, "Type", "must be AWS::DynamoDB::Table, and the resource must be declared"));
        };
        let id = logical_id;
        let properties = &table.properties;
        let key_of = |schema: &Value, kind: &str| {
            list(schema)
                .into_iter()
                .find(|key| key["KeyType"].as_str() == Some(kind))
                .and_then(|key| key["AttributeName"].as_str())
                .map(str::to_owned)
        };
        let hash_key = |schema: &Value, property| -> Result<String> {
            key_of(schema, "HASH").ok_or_else(|| problem(id, property, "must name a HASH key"))
        };
        let attributes = list(&properties["AttributeDefinitions"])
            .into_iter()
            .map(|attribute| {
                let name = text(&attribute["AttributeName"], id, "Properties.AttributeDefinitions")?;
                let kind = text(&attribute["AttributeType"], id, "Properties.AttributeDefinitions")?;
                Ok((name.to_owned(), kind.to_owned()))
            })
            .collect::<Result<_>>()?;
        let mut indexes = Vec::new();
        for (kind, local) in [("GlobalSecondaryIndexes", false), ("LocalSecondaryIndexes", true)] {
            for index in list(&properties[kind]) {
                indexes.push(IndexSpec {
                    name: text(&index["IndexName"], id, "Properties.*SecondaryIndexes.IndexName")?.to_owned(),
                    local,
                    partition_key: hash_key(&index["KeySchema"], "Properties.*SecondaryIndexes.KeySchema")?,
                    sort_key: key_of(&index["KeySchema"], "RANGE"),
                    projection: text(
                        &index["Projection"]["ProjectionType"],
                        id,
                        "Properties.*SecondaryIndexes.Projection.ProjectionType",
                    )?
                    .to_owned(),
                });
            }
        }
        let ttl = &properties["TimeToLiveSpecification"];
        Ok(TableSpec {
            logical_id: id.to_owned(),
            partition_key: hash_key(&properties["KeySchema"], "Properties.KeySchema")?,
            sort_key: key_of(&properties["KeySchema"], "RANGE"),
            attributes,
            indexes,
            ttl_attribute: (ttl["Enabled"].as_bool() == Some(true))
                .then(|| ttl["AttributeName"].as_str().map(str::to_owned))
                .flatten(),
            billing_mode: properties["BillingMode"].as_str().map(str::to_owned),
        })
    }
}

fn function_spec(id: &str, function: &Resource) -> FunctionSpec {
    let statements = list(&function.properties["Policies"])
        .into_iter()
        .flat_map(|policy| list(&policy["Statement"]))
        .map(|statement| Statement {
            effect: render(&statement["Effect"]),
            actions: list(&statement["Action"]).into_iter().map(render).collect(),
            resources: list(&statement["Resource"]).into_iter().map(render).collect(),
        })
        .collect();
    let environment = match &function.properties["Environment"]["Variables"] {
        Value::Mapping(variables) => variables.keys().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    FunctionSpec {
        logical_id: id.to_owned(),
        binary: function.metadata["BuildProperties"]["Binary"].as_str().map(str::to_owned),
        statements,
        environment,
    }
}
