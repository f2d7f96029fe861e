//! The messenger in the cloud: API Gateway's @connections API through `aws-sdk-apigatewaymanagement`.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;

use super::{Endpoint, Messenger};
use crate::config;
use crate::error::{ConfigError, PostError};

/// Where posts go: one fixed endpoint, or the endpoint of each event's API in a region.
#[derive(Debug)]
enum Target {
    Fixed(String),
    Region(String),
}

/// Posts through the @connections API of whichever API and stage an event came from.
#[derive(Debug)]
pub struct ApiGatewayMessenger {
    aws: aws_config::SdkConfig,
    target: Target,
    // One client per endpoint URL; a function normally serves one API and stage.
    clients: Mutex<HashMap<String, Client>>,
}

impl ApiGatewayMessenger {
    /// A messenger that always posts to `url`, stage included (e.g. `http://127.0.0.1:3001/dev`).
    pub fn with_endpoint(aws: &aws_config::SdkConfig, url: impl Into<String>) -> Self {
        Self { aws: aws.clone(), target: Target::Fixed(url.into()), clients: Mutex::default() }
    }

    /// A messenger that builds each endpoint from the event's API and stage, in the SDK
    /// configuration's region; fails naming `AWS_REGION` when there is none.
    pub fn in_region(aws: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let region = aws.region().ok_or(ConfigError::Missing(config::REGION))?.to_string();
        Ok(Self { aws: aws.clone(), target: Target::Region(region), clients: Mutex::default() })
    }

    /// A messenger for `APIGW_MANAGEMENT_ENDPOINT` when it is set, else [`Self::in_region`].
    pub fn from_env(aws: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        match config::optional(config::MANAGEMENT_ENDPOINT) {
            Some(url) => Ok(Self::with_endpoint(aws, url)),
            None => Self::in_region(aws),
        }
    }

    fn client_for(&self, endpoint: &Endpoint) -> Client {
        let url = match &self.target {
            Target::Fixed(url) => url.clone(),
            Target::Region(region) => endpoint.url(region),
        };
        let mut clients = self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        clients
            .entry(url)
            .or_insert_with_key(|url| {
                let config = aws_sdk_apigatewaymanagement::config::Builder::from(&self.aws).endpoint_url(url).build();
                Client::from_conf(config)
            })
            .clone()
    }
}

#[async_trait]
impl Messenger for ApiGatewayMessenger {
    async fn post(&self, endpoint: &Endpoint, connection_id: &str, data: &[u8]) -> Result<(), PostError> {
        let result = self
            .client_for(endpoint)
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(data))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => Err(match error.as_service_error() {
                Some(PostToConnectionError::GoneException(_)) => PostError::Gone(connection_id.to_owned()),
                Some(PostToConnectionError::PayloadTooLargeException(_)) => PostError::PayloadTooLarge,
                _ => PostError::Api { connection_id: connection_id.to_owned(), source: Box::new(error.into()) },
            }),
        }
    }
}
