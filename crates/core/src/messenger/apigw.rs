//! The messenger in the cloud: API Gateway's @connections API through `aws-sdk-apigatewaymanagement`.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;

use super::{Endpoint, Messenger};
use crate::config;
use crate::error::PostError;

/// Posts through the @connections API of whichever API and stage an event came from.
#[derive(Debug)]
pub struct ApiGatewayMessenger {
    aws: aws_config::SdkConfig,
    override_url: Option<String>,
    // One client per endpoint URL; a function normally serves one API and stage.
    clients: Mutex<HashMap<String, Client>>,
}

impl ApiGatewayMessenger {
    /// A messenger that builds each endpoint from the event, or always uses `override_url`
    /// (including the stage, e.g. `http://127.0.0.1:3001/dev`) when given.
    pub fn new(aws: &aws_config::SdkConfig, override_url: Option<String>) -> Self {
        Self { aws: aws.clone(), override_url, clients: Mutex::default() }
    }

    /// A messenger whose override comes from `APIGW_MANAGEMENT_ENDPOINT`, if set.
    pub fn from_env(aws: &aws_config::SdkConfig) -> Self {
        Self::new(aws, config::optional(config::MANAGEMENT_ENDPOINT))
    }

    fn client_for(&self, endpoint: &Endpoint) -> Client {
        let url = match &self.override_url {
            Some(url) => url.clone(),
            None => endpoint.url(self.aws.region().map(|region| region.as_ref()).unwrap_or("us-east-1")),
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
