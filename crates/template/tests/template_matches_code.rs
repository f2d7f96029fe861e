//! `template.yaml` checked against the code: routes, functions, binaries, least-privilege IAM
//! and the table layout the store uses.

use std::collections::BTreeSet;

use chat_core::protocol::ROUTE_SELECTION_EXPRESSION;
use chat_core::routes::{Route, Service};
use chat_core::store::schema;
use chat_template::{FunctionSpec, Template};

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn template() -> Template {
    Template::load(root().join("template.yaml")).expect("template.yaml parses")
}

fn function_of(template: &Template, route: Route) -> FunctionSpec {
    let routes = template.routes().expect("every route resolves to a function");
    let spec = routes.iter().find(|spec| spec.key == route.key()).unwrap_or_else(|| panic!("no route {}", route.key()));
    template.functions().into_iter().find(|function| function.logical_id == spec.function).expect("function")
}

/// The IAM actions each route's function calls, and nothing more: its DynamoDB actions, and
/// posting to connections for every route that answers or delivers.
fn actions_needed(route: Route) -> BTreeSet<&'static str> {
    let mut actions: BTreeSet<&'static str> =
        dynamodb_grants_needed(route).into_iter().map(|(action, _)| action).collect();
    if route.uses().contains(&Service::Messenger) {
        actions.insert("execute-api:ManageConnections");
    }
    if route.uses().contains(&Service::Queue) {
        // Big rooms' pages, to the fan-out queue.
        actions.insert("sqs:SendMessage");
    }
    actions
}

#[test]
fn the_api_selects_routes_by_the_expression_the_code_uses() {
    let api = template().websocket_api().unwrap();

    assert_eq!(api.route_selection_expression, ROUTE_SELECTION_EXPRESSION);
}

#[test]
fn every_route_the_code_knows_has_a_route_and_nothing_else_does() {
    let keys: BTreeSet<String> = template().routes().unwrap().into_iter().map(|route| route.key).collect();

    let expected: BTreeSet<String> = Route::ALL.iter().map(|route| route.key().to_owned()).collect();
    assert_eq!(keys, expected);
}

/// The functions' binaries: the files of `crates/functions/src/bin`, which the Makefile builds.
fn binaries_in_the_workspace() -> BTreeSet<String> {
    let files = std::fs::read_dir(root().join("crates/functions/src/bin")).unwrap();
    files.map(|entry| entry.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned()).collect()
}

/// A function's sample event, as `make invoke-<function>` finds it: `events/<name in
/// camelCase>.json`.
fn sample_event_of(function: &str) -> serde_json::Value {
    let mut name = String::new();
    let mut words = function.split('-');
    name.push_str(words.next().unwrap());
    for word in words {
        let mut letters = word.chars();
        name.extend(letters.next().map(|first| first.to_ascii_uppercase()));
        name.push_str(letters.as_str());
    }
    let path = root().join(format!("events/{name}.json"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{function} has no sample event {}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_templates_functions_are_the_route_tables_each_a_binary_with_a_sample_event() {
    let template = template();
    let table: BTreeSet<String> = chat_core::routes::functions().into_iter().map(str::to_owned).collect();

    let declared: BTreeSet<String> = template.functions().into_iter().filter_map(|function| function.binary).collect();
    assert_eq!(declared, table, "template.yaml's functions");
    assert_eq!(binaries_in_the_workspace(), table, "crates/functions/src/bin");
    for &route in Route::ALL {
        let binary = function_of(&template, route).binary.unwrap();
        assert_eq!(binary, route.function(), "the function serving {}", route.key());
        let event = sample_event_of(&binary);
        let key = event["requestContext"]["routeKey"].as_str().unwrap_or_default().to_owned();
        assert!(Route::served_by(&binary).any(|served| served.key() == key), "{binary}'s sample event is for {key}");
    }
    assert_eq!(chat_core::routes::WORKERS, ["fan-out-worker", "authorizer"], "the functions that serve no route");
    assert_eq!(
        sample_event_of("authorizer")["type"],
        "REQUEST",
        "the authorizer's sample event is a REQUEST authorizer's"
    );
    let record = &sample_event_of("fan-out-worker")["Records"][0];
    assert_eq!(record["eventSource"], "aws:sqs", "the worker's sample event is an SQS event");
    let page: chat_core::delivery::queue::FanOutPage = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
    assert!(!page.connection_ids.is_empty());
}

#[test]
fn api_gateway_may_invoke_each_route_function_from_this_api_and_stage_only() {
    let template = template();
    let api = template.websocket_api().unwrap().logical_id;
    let permissions = template.permissions();

    for &route in Route::ALL {
        let function = function_of(&template, route).logical_id;
        let permission = permissions
            .iter()
            .find(|permission| permission.function == function)
            .unwrap_or_else(|| panic!("no AWS::Lambda::Permission for {function}"));
        assert_eq!(permission.principal, "apigateway.amazonaws.com");
        let source =
            permission.source_arn.as_deref().unwrap_or_else(|| panic!("{} has no SourceArn", permission.logical_id));
        assert!(source.ends_with(&format!(":${{{api}}}/${{StageName}}/{}", route.key())), "{source}");
    }
}

#[test]
fn each_function_is_granted_exactly_the_actions_it_calls() {
    let template = template();

    for &route in Route::ALL {
        let function = function_of(&template, route);
        let granted: BTreeSet<&str> =
            function.statements.iter().flat_map(|statement| statement.actions.iter().map(String::as_str)).collect();
        assert_eq!(granted, actions_needed(route), "{}", function.logical_id);
        assert!(function.statements.iter().all(|statement| statement.effect == "Allow"));
    }
}

#[test]
fn no_policy_uses_a_wildcard_beyond_the_connections_path() {
    let template = template();
    let api = template.websocket_api().unwrap().logical_id;
    let connections = format!(":${{{api}}}/${{StageName}}/POST/@connections/*");

    for function in template.functions() {
        for statement in &function.statements {
            for action in &statement.actions {
                assert!(!action.contains('*'), "{}: action {action}", function.logical_id);
            }
            for resource in &statement.resources {
                let allowed = resource.ends_with(&connections) && resource.matches('*').count() == 1;
                assert!(!resource.contains('*') || allowed, "{}: resource {resource}", function.logical_id);
                if statement.actions.iter().any(|action| action.starts_with("execute-api:")) {
                    assert!(resource.ends_with(&connections), "{}: {resource}", function.logical_id);
                }
            }
        }
    }
}

#[test]
fn only_sync_reads_the_activity_index_and_no_function_reads_another() {
    for &route in Route::ALL {
        let function = function_of(&template(), route);
        let indexes: Vec<&String> = function
            .statements
            .iter()
            .flat_map(|statement| statement.resources.iter())
            .filter(|resource| resource.contains("/index/"))
            .collect();
        let expected: Vec<String> = match route {
            Route::Sync => vec![format!("${{UsersTable.Arn}}/index/{}", schema::ACTIVITY_INDEX)],
            _ => Vec::new(),
        };
        assert_eq!(indexes, expected.iter().collect::<Vec<_>>(), "{}", function.logical_id);
    }
}

/// The logical id a `!Ref X` or `!GetAtt X.Arn` names.
fn referenced(value: &serde_yaml_ng::Value) -> Option<String> {
    let rendered = chat_template::render(value);
    let name = rendered.strip_prefix("${")?.strip_suffix('}')?;
    Some(name.split('.').next()?.to_owned())
}

fn assert_keeps_logs_for_a_while(template: &Template, log_group: &str, user: &str) {
    let (_, resource) = template
        .resources_of("AWS::Logs::LogGroup")
        .find(|(id, _)| *id == log_group)
        .unwrap_or_else(|| panic!("{user} logs to {log_group}, which is not a declared AWS::Logs::LogGroup"));
    assert_eq!(chat_template::render(&resource.properties["RetentionInDays"]), "${LogRetentionDays}", "{log_group}");
}

#[test]
fn every_function_logs_to_a_declared_log_group_with_a_retention_period() {
    let template = template();

    for (id, function) in template.resources_of("AWS::Serverless::Function") {
        let group = referenced(&function.properties["LoggingConfig"]["LogGroup"])
            .unwrap_or_else(|| panic!("{id} has no Properties.LoggingConfig.LogGroup"));
        assert_keeps_logs_for_a_while(&template, &group, id);
    }
}

#[test]
fn the_stage_writes_access_logs_to_a_log_group_with_a_retention_period() {
    let template = template();
    let (id, stage) = template.resources_of("AWS::ApiGatewayV2::Stage").next().expect("a stage");

    let settings = &stage.properties["AccessLogSettings"];
    let group = referenced(&settings["DestinationArn"]).unwrap_or_else(|| panic!("{id} has no access log destination"));

    assert_keeps_logs_for_a_while(&template, &group, id);
    let format = settings["Format"].as_str().unwrap();
    assert!(format.contains("$context.connectionId") && format.contains("$context.status"), "{format}");
    assert!(!format.contains("sourceIp"), "access logs hold no personal data: {format}");
}

#[test]
fn the_alarms_watch_metrics_the_handlers_emit() {
    use chat_core::metrics::{Metric, NAMESPACE};
    let template = template();
    let alarms: Vec<_> = template.resources_of("AWS::CloudWatch::Alarm").collect();

    let watched: BTreeSet<&str> =
        alarms.iter().map(|(_, alarm)| alarm.properties["MetricName"].as_str().unwrap()).collect();

    let ours = [Metric::BackendFailures.name(), Metric::PostsFailed.name(), Metric::PostsThrottled.name()];
    assert_eq!(watched, ours.into_iter().chain(["ApproximateNumberOfMessagesVisible"]).collect());
    for (id, alarm) in alarms {
        if alarm.properties["Namespace"] == "AWS/SQS" {
            let queue = &alarm.properties["Dimensions"][0]["Value"];
            assert_eq!(referenced(queue).as_deref(), Some("FanOutDeadLetterQueue"), "{id} watches the dead letters");
            continue;
        }
        assert_eq!(alarm.properties["Namespace"], NAMESPACE, "{id}");
        assert!(alarm.properties.get("Dimensions").is_none(), "{id} watches the chat-wide metric, which has none");
    }
}

#[test]
fn functions_that_use_the_store_are_told_the_table_name() {
    let template = template();

    for &route in Route::ALL {
        let function = function_of(&template, route);
        let uses_store = actions_needed(route).iter().any(|action| action.starts_with("dynamodb:"));
        let has_table = function.environment.iter().any(|name| name == chat_core::config::TABLE_NAME);
        assert_eq!(has_table, uses_store, "{}", function.logical_id);
    }
}

#[test]
fn the_table_has_the_key_index_and_ttl_the_store_uses() {
    let table = template().table(schema::CONNECTIONS_TABLE).unwrap();
    assert_eq!(table.sort_key, None);

    assert_eq!(table.partition_key, schema::CONNECTION_ID);
    assert!(table.indexes.is_empty(), "a user's connections are read from the users table, strongly consistent");
    assert_eq!(table.ttl_attribute.as_deref(), Some(schema::EXPIRES_AT));
    assert_eq!(table.billing_mode.as_deref(), Some("PAY_PER_REQUEST"));
}

#[test]
fn a_route_whose_target_names_a_missing_integration_is_reported_by_resource_and_property() {
    let text = std::fs::read_to_string(root().join("template.yaml"))
        .unwrap()
        .replace("integrations/${ConnectIntegration}", "integrations/${NoSuchIntegration}");

    let error = Template::parse(&text).unwrap().routes().unwrap_err().to_string();

    assert!(error.contains("ConnectRoute"), "{error}");
    assert!(error.contains("Properties.Target"), "{error}");
    assert!(error.contains("NoSuchIntegration"), "{error}");
}

fn context(overrides: &[(&str, &str)]) -> chat_template::Context {
    let overrides: Vec<(String, String)> = overrides.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    chat_template::Context::new(&template(), &overrides).expect("the conditions evaluate")
}

const TOKEN_MODE: &[(&str, &str)] =
    &[("AuthIssuer", "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"), ("AuthAudience", "app-client")];

#[test]
fn demo_mode_by_default_has_no_authorizer_on_connect() {
    let template = template();
    assert_eq!(template.connect_authorizer(&context(&[])).unwrap(), None);
    assert!(!context(&[]).condition("TokenMode"));
}

#[test]
fn token_mode_puts_the_authorizer_function_on_connect() {
    let template = template();
    let authorizer = template.connect_authorizer(&context(TOKEN_MODE)).unwrap().expect("an authorizer in token mode");
    assert_eq!(authorizer.function, "AuthorizerFunction");
    assert!(authorizer.identity_sources.is_empty(), "the token may come in the query or the subprotocols");
    let resource = template.resource_named(&authorizer.logical_id).unwrap();
    assert_eq!(resource.properties["AuthorizerType"].as_str(), Some("REQUEST"));
    for id in [authorizer.logical_id.as_str(), "AuthorizerFunction", "AuthorizerPermission", "AuthorizerLogGroup"] {
        let resource = template.resource_named(id).unwrap_or_else(|| panic!("no {id}"));
        assert_eq!(resource.condition.as_deref(), Some("TokenMode"), "{id} exists in token mode only");
    }
}

#[test]
fn api_gateway_may_invoke_the_authorizer_from_this_apis_authorizers_only() {
    let template = template();
    let api = template.websocket_api().unwrap().logical_id;
    let permission =
        template.permissions().into_iter().find(|p| p.function == "AuthorizerFunction").expect("a permission");
    assert_eq!(permission.principal, "apigateway.amazonaws.com");
    let source = permission.source_arn.expect("a SourceArn");
    assert!(source.ends_with(&format!(":${{{api}}}/authorizers/${{ConnectAuthorizer}}")), "{source}");
}

#[test]
fn the_authorizer_function_has_no_aws_permissions_and_gets_its_settings_from_the_parameters() {
    let template = template();
    let function = template.functions().into_iter().find(|f| f.logical_id == "AuthorizerFunction").expect("declared");
    assert!(function.statements.is_empty(), "the authorizer calls no AWS API: {:?}", function.statements);
    assert!(template.resource_named("AuthorizerFunction").unwrap().properties.get("Policies").is_none());
    assert_eq!(function.binary.as_deref(), Some("authorizer"));
    let environment = template.environment("AuthorizerFunction", &context(TOKEN_MODE));
    assert_eq!(environment.get(chat_core::config::AUTH_ISSUER).map(String::as_str), Some(TOKEN_MODE[0].1));
    assert_eq!(environment.get(chat_core::config::AUTH_AUDIENCE).map(String::as_str), Some("app-client"));
    assert_eq!(environment.get(chat_core::config::AUTH_USER_CLAIM).map(String::as_str), Some("sub"));
    assert!(environment.contains_key(chat_core::config::AUTH_JWKS_URL));
    let connect = template.environment("ConnectFunction", &context(TOKEN_MODE));
    assert_eq!(
        connect.get(chat_core::config::AUTH_ISSUER).map(String::as_str),
        Some(TOKEN_MODE[0].1),
        "$connect knows the mode"
    );
}

#[test]
fn a_parameter_override_the_template_does_not_declare_is_refused_by_name() {
    let error = chat_template::Context::new(&template(), &[("AuthIsuer".into(), "x".into())]).unwrap_err();
    assert!(error.to_string().contains("no parameter AuthIsuer"), "{error}");
}

#[test]
fn the_users_table_is_keyed_by_user_then_entry_with_a_local_index_on_activity() {
    let table = template().table(schema::USERS_TABLE).unwrap();
    assert_eq!(table.partition_key, schema::USER_ID);
    assert_eq!(table.sort_key.as_deref(), Some(schema::ENTRY));
    assert_eq!(table.indexes.len(), 1);
    let index = &table.indexes[0];
    assert!(index.local, "a local index reads strongly consistent; it can only be declared with the table");
    assert_eq!(
        (index.name.as_str(), index.partition_key.as_str(), index.sort_key.as_deref()),
        (schema::ACTIVITY_INDEX, schema::USER_ID, Some(schema::ACTIVITY))
    );
    assert_eq!(index.projection, "ALL", "sync reads every attribute from the index alone");
    assert_eq!(table.ttl_attribute.as_deref(), Some(schema::EXPIRES_AT));
    assert_eq!(table.billing_mode.as_deref(), Some("PAY_PER_REQUEST"));
}

#[test]
fn the_memberships_table_is_keyed_by_room_then_connection_and_expires_with_it() {
    let table = template().table(schema::MEMBERSHIPS_TABLE).unwrap();
    assert_eq!(table.partition_key, schema::ROOM_ID);
    assert_eq!(table.sort_key.as_deref(), Some(schema::CONNECTION_ID));
    assert!(table.indexes.is_empty(), "members are read by key, strongly consistent, never through an index");
    assert_eq!(table.ttl_attribute.as_deref(), Some(schema::EXPIRES_AT));
    assert_eq!(table.billing_mode.as_deref(), Some("PAY_PER_REQUEST"));
}

/// Where each DynamoDB action of each route is used: the table (or index) it touches.
fn dynamodb_grants_needed(route: Route) -> BTreeSet<(&'static str, &'static str)> {
    const CONNECTIONS: &str = "${ConnectionsTable.Arn}";
    const MEMBERSHIPS: &str = "${MembershipsTable.Arn}";
    const USERS: &str = "${UsersTable.Arn}";
    const ACTIVITY_INDEX: &str = "${UsersTable.Arn}/index/activity-index";
    const MESSAGES: &str = "${MessagesTable.Arn}";
    // What removing a connection (gone, or a failed $connect) takes: its record, its entry in
    // the users table, its memberships.
    const REMOVE: [(&str, &str); 3] = [
        ("dynamodb:DeleteItem", CONNECTIONS),
        ("dynamodb:DeleteItem", USERS),
        ("dynamodb:BatchWriteItem", MEMBERSHIPS),
    ];
    // Settling subscriptions: reading the facts, subscribing and unsubscribing.
    const SETTLE: [(&str, &str); 6] = [
        ("dynamodb:GetItem", CONNECTIONS),
        ("dynamodb:UpdateItem", CONNECTIONS),
        ("dynamodb:Query", USERS),
        ("dynamodb:PutItem", MEMBERSHIPS),
        ("dynamodb:DeleteItem", MEMBERSHIPS),
        ("dynamodb:GetItem", USERS),
    ];
    let mut grants: BTreeSet<_> = match route {
        Route::Connect => [("dynamodb:PutItem", CONNECTIONS), ("dynamodb:PutItem", USERS)].into(),
        Route::Disconnect => BTreeSet::new(),
        Route::Default => BTreeSet::new(),
        Route::SendMessage => [
            ("dynamodb:GetItem", CONNECTIONS),
            ("dynamodb:Query", USERS),
            ("dynamodb:GetItem", USERS),
            ("dynamodb:UpdateItem", USERS),
            ("dynamodb:Query", MEMBERSHIPS),
            ("dynamodb:Query", MESSAGES),
            ("dynamodb:PutItem", MESSAGES),
            ("dynamodb:UpdateItem", MESSAGES),
            // An idempotent send's claim: read while pending, deleted when nothing was stored.
            ("dynamodb:GetItem", MESSAGES),
            ("dynamodb:DeleteItem", MESSAGES),
            // A gone room member with no record left: its orphaned membership.
            ("dynamodb:DeleteItem", MEMBERSHIPS),
            ("dynamodb:UpdateItem", CONNECTIONS),
        ]
        .into(),
        Route::JoinRoom => [("dynamodb:PutItem", USERS), ("dynamodb:UpdateItem", USERS), ("dynamodb:Query", MESSAGES)]
            .into_iter()
            .chain(SETTLE)
            .collect(),
        Route::LeaveRoom => SETTLE.into_iter().collect(),
        Route::GetHistory => {
            // The head: a direct conversation's, apart from its messages.
            [
                ("dynamodb:GetItem", CONNECTIONS),
                ("dynamodb:GetItem", USERS),
                ("dynamodb:Query", MESSAGES),
                ("dynamodb:GetItem", MESSAGES),
            ]
            .into()
        }
        Route::Sync => [
            ("dynamodb:GetItem", CONNECTIONS),
            ("dynamodb:Query", USERS),
            ("dynamodb:Query", ACTIVITY_INDEX),
            // Each room's newest message.
            ("dynamodb:Query", MESSAGES),
        ]
        .into(),
        Route::MarkRead => [
            ("dynamodb:GetItem", CONNECTIONS),
            ("dynamodb:GetItem", USERS),
            ("dynamodb:Query", USERS),
            ("dynamodb:UpdateItem", USERS),
            ("dynamodb:Query", MESSAGES),
            // A direct conversation whose messages are all gone: its head.
            ("dynamodb:GetItem", MESSAGES),
        ]
        .into(),
    };
    // Every route that posts removes the connections it finds gone; $connect removes its own
    // record when it fails after saving it; $disconnect removes the closed one.
    if !matches!(route, Route::Default | Route::GetHistory | Route::Sync) {
        grants.extend(REMOVE);
    }
    if route == Route::Connect {
        grants.extend(SETTLE.into_iter().filter(|(action, table)| !(*action == "dynamodb:GetItem" && *table == USERS)));
    }
    grants
}

#[test]
fn each_dynamodb_action_is_granted_on_only_the_table_or_index_it_uses() {
    let template = template();
    for &route in Route::ALL {
        let function = function_of(&template, route);
        let granted: BTreeSet<(String, String)> = function
            .statements
            .iter()
            .flat_map(|statement| {
                statement.actions.iter().filter(|action| action.starts_with("dynamodb:")).flat_map(move |action| {
                    statement.resources.iter().map(move |resource| (action.clone(), resource.clone()))
                })
            })
            .collect();
        let needed: BTreeSet<(String, String)> =
            dynamodb_grants_needed(route).into_iter().map(|(a, r)| (a.to_owned(), r.to_owned())).collect();
        assert_eq!(granted, needed, "{}", function.logical_id);
    }
}

/// The worker's DynamoDB grants: what posting a page takes (removing a gone connection, and a
/// gone member's orphaned membership), as for sendMessage's own posts.
fn worker_grants_needed() -> BTreeSet<(String, String)> {
    [
        ("dynamodb:GetItem", "${ConnectionsTable.Arn}"),
        ("dynamodb:UpdateItem", "${ConnectionsTable.Arn}"),
        ("dynamodb:DeleteItem", "${ConnectionsTable.Arn}"),
        ("dynamodb:DeleteItem", "${UsersTable.Arn}"),
        ("dynamodb:DeleteItem", "${MembershipsTable.Arn}"),
        ("dynamodb:BatchWriteItem", "${MembershipsTable.Arn}"),
        ("sqs:ReceiveMessage", "${FanOutQueue.Arn}"),
        ("sqs:DeleteMessage", "${FanOutQueue.Arn}"),
        ("sqs:GetQueueAttributes", "${FanOutQueue.Arn}"),
    ]
    .into_iter()
    .map(|(action, resource)| (action.to_owned(), resource.to_owned()))
    .collect()
}

#[test]
fn the_fan_out_worker_is_granted_its_queue_its_posts_and_what_removing_a_gone_connection_takes() {
    let template = template();
    let worker = template.functions().into_iter().find(|f| f.logical_id == "FanOutWorkerFunction").expect("a worker");
    let granted: BTreeSet<(String, String)> = worker
        .statements
        .iter()
        .filter(|statement| !statement.actions.iter().any(|action| action.starts_with("execute-api:")))
        .flat_map(|statement| {
            statement
                .actions
                .iter()
                .flat_map(move |action| statement.resources.iter().map(move |r| (action.clone(), r.clone())))
        })
        .collect();
    assert_eq!(granted, worker_grants_needed());
    let posts = worker.statements.iter().find(|s| s.actions.iter().any(|a| a == "execute-api:ManageConnections"));
    assert!(posts.expect("it posts").resources[0].ends_with("/POST/@connections/*"));
    for variable in
        [chat_core::config::FAN_OUT_POSTS_PER_SECOND, chat_core::config::FAN_OUT_WORKERS, chat_core::config::TABLE_NAME]
    {
        assert!(worker.environment.iter().any(|name| name == variable), "the worker is told {variable}");
    }
    let send = function_of(&template, Route::SendMessage);
    assert!(send.environment.iter().any(|name| name == chat_core::config::FAN_OUT_QUEUE_URL));
    let sends = send.statements.iter().find(|s| s.actions == ["sqs:SendMessage"]).expect("sendMessage sends pages");
    assert_eq!(sends.resources, ["${FanOutQueue.Arn}"], "to the fan-out queue only");
}

#[test]
fn the_fan_out_queue_follows_awss_guidance_for_a_lambda_event_source() {
    let template = template();
    let queue = &template.resource_named("FanOutQueue").expect("the queue").properties;
    let worker = &template.resource_named("FanOutWorkerFunction").expect("the worker").properties;
    let source = &template.resource_named("FanOutEventSource").expect("its event source").properties;

    let timeout = worker["Timeout"].as_u64().expect("the worker sets its timeout");
    let visibility = queue["VisibilityTimeout"].as_u64().unwrap();
    assert!(visibility >= 6 * timeout, "visibility {visibility} s, at least six times the worker's {timeout} s");
    assert!(queue["RedrivePolicy"]["maxReceiveCount"].as_u64().unwrap() >= 5);
    assert_eq!(referenced(&queue["RedrivePolicy"]["deadLetterTargetArn"]).as_deref(), Some("FanOutDeadLetterQueue"));
    assert_eq!(referenced(&source["EventSourceArn"]).as_deref(), Some("FanOutQueue"));
    assert_eq!(referenced(&source["FunctionName"]).as_deref(), Some("FanOutWorkerFunction"));
    assert_eq!(referenced(&source["ScalingConfig"]["MaximumConcurrency"]).as_deref(), Some("FanOutWorkers"));
    assert_eq!(source["FunctionResponseTypes"][0], "ReportBatchItemFailures");
    // A page is FAN_OUT_PAGE posts at the worker's pace, which FanOutPostsPerSecond's
    // description asks to keep at 50 a second or more: 20 s at most, well within the timeout.
    let page_seconds = chat_core::limits::FAN_OUT_PAGE as u64 / 50;
    assert!(page_seconds * 2 <= timeout, "a page at 50 posts/s ({page_seconds} s) fits twice in {timeout} s");
}
