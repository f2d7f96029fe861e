//! What the template declares, read into plain values: the WebSocket API and its routes, the
//! stage's throttling, the functions with their IAM statements, the authorizer, the
//! permissions to invoke, and the tables with their indexes.

use std::collections::BTreeMap;

/// The WebSocket API resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketApi {
    /// Logical id, e.g. `ChatApi`.
    pub logical_id: String,
    /// e.g. `$request.body.action`.
    pub route_selection_expression: String,
}

/// A route, its integration and the function the integration invokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Logical id of the route.
    pub logical_id: String,
    /// The route key, e.g. `$connect` or `sendMessage`.
    pub key: String,
    /// Logical id of the integration the route targets.
    pub integration: String,
    /// Logical id of the function the integration invokes.
    pub function: String,
    /// The route's `RouteResponseSelectionExpression`, set on two-way routes (`$default`).
    pub response_selection: Option<String>,
}

/// A route response (`AWS::ApiGatewayV2::RouteResponse`): what makes a route two-way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteResponseSpec {
    /// Logical id of the route response.
    pub logical_id: String,
    /// Logical id of the route it answers for (its `RouteId: !Ref Route`).
    pub route: String,
    /// Its `RouteResponseKey`; WebSocket APIs define only `$default`.
    pub key: String,
}

/// A route's throttling: a token bucket of `burst` requests, refilled at `rate` a second
/// (`ThrottlingBurstLimit`, `ThrottlingRateLimit` of a stage's route settings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttle {
    /// Requests at once (`ThrottlingBurstLimit`).
    pub burst: u32,
    /// Requests per second, on average (`ThrottlingRateLimit`).
    pub rate: f64,
}

/// The stage's throttling: `DefaultRouteSettings` for every route, and `RouteSettings` by route
/// key where a route has its own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageThrottling {
    /// From `DefaultRouteSettings`; none when the stage sets no limit.
    pub default: Option<Throttle>,
    /// From `RouteSettings`, by route key.
    pub routes: BTreeMap<String, Throttle>,
}

impl StageThrottling {
    /// The limit of a route, if it has one.
    pub fn of(&self, route_key: &str) -> Option<Throttle> {
        self.routes.get(route_key).copied().or(self.default)
    }
}

/// A function and what it is allowed to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    /// Logical id, e.g. `ConnectFunction`.
    pub logical_id: String,
    /// The cargo binary SAM builds for it (`Metadata.BuildProperties.Binary`).
    pub binary: Option<String>,
    /// Its inline IAM policy statements.
    pub statements: Vec<Statement>,
    /// Names of its environment variables.
    pub environment: Vec<String>,
}

/// One IAM statement, with intrinsic functions rendered as `${...}` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// `Allow` or `Deny`.
    pub effect: String,
    /// The actions, e.g. `dynamodb:PutItem`.
    pub actions: Vec<String>,
    /// The resources, e.g. `${ConnectionsTable.Arn}`.
    pub resources: Vec<String>,
}

/// The Lambda REQUEST authorizer on `$connect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerSpec {
    /// Logical id of the authorizer resource.
    pub logical_id: String,
    /// Logical id of the function it invokes.
    pub function: String,
    /// Its identity sources, e.g. `route.request.querystring.token`; none when empty.
    pub identity_sources: Vec<String>,
}

/// A Lambda permission that lets API Gateway invoke a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionSpec {
    /// Logical id of the permission.
    pub logical_id: String,
    /// Logical id of the function it applies to.
    pub function: String,
    /// The principal, e.g. `apigateway.amazonaws.com`.
    pub principal: String,
    /// The rendered `SourceArn`, if any.
    pub source_arn: Option<String>,
}

/// The DynamoDB table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Logical id.
    pub logical_id: String,
    /// The partition key's attribute name.
    pub partition_key: String,
    /// The sort key's attribute name, if the table has one.
    pub sort_key: Option<String>,
    /// Each declared attribute and its type (`S`, `N`, `B`).
    pub attributes: Vec<(String, String)>,
    /// Secondary indexes, global then local.
    pub indexes: Vec<IndexSpec>,
    /// The TTL attribute, if TTL is enabled.
    pub ttl_attribute: Option<String>,
    /// `PAY_PER_REQUEST` or `PROVISIONED`.
    pub billing_mode: Option<String>,
}

/// A secondary index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    /// The index name.
    pub name: String,
    /// Whether it is a local secondary index (same partition key as the table, declared with
    /// it, readable strongly consistently) rather than a global one.
    pub local: bool,
    /// Its partition key's attribute name.
    pub partition_key: String,
    /// Its sort key's attribute name, if it has one.
    pub sort_key: Option<String>,
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection: String,
}
