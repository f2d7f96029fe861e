//! The issuer's signing keys: fetched over HTTPS once per warm instance, cached, and fetched
//! again when a token names a key id not seen yet, at most once every
//! [`JWKS_REFETCH_INTERVAL`](crate::limits::JWKS_REFETCH_INTERVAL).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use tokio::time::Instant;

use crate::limits::{JWKS_FETCH_TIMEOUT, JWKS_REFETCH_INTERVAL, MAX_JWKS_BYTES};

/// The JWKS could not be had.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The URL is not an absolute http(s) URL.
    #[error("the JWKS URL {0:?} is not an absolute http(s) URL; check AUTH_JWKS_URL or AUTH_ISSUER")]
    BadUrl(String),
    /// Connecting or reading failed, or took too long.
    #[error("fetching the JWKS from {url} failed: {cause}")]
    Unreachable {
        /// Where it was fetched from.
        url: String,
        /// What went wrong.
        cause: String,
    },
    /// The issuer answered something other than 200.
    #[error("the JWKS URL {url} answered HTTP {status}")]
    Status {
        /// Where it was fetched from.
        url: String,
        /// The answer's status.
        status: u16,
    },
    /// The answer is not a JWKS, or too large.
    #[error("the JWKS from {url} is not a valid key set: {cause}")]
    Invalid {
        /// Where it was fetched from.
        url: String,
        /// What is wrong with it.
        cause: String,
    },
    /// A fetch failed moments ago; the next one waits for the refetch interval.
    #[error("the last JWKS fetch failed less than {}s ago: {_0}", JWKS_REFETCH_INTERVAL.as_secs())]
    Recently(String),
}

/// Where the key set comes from.
#[async_trait]
pub trait JwksSource: Send + Sync {
    /// Fetches the current key set.
    async fn fetch(&self) -> Result<JwkSet, JwksError>;
}

/// A JWKS served over HTTP(S), fetched with a time limit and a size limit.
pub struct HttpJwks {
    url: hyper::Uri,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl HttpJwks {
    /// A source for `url`; https with the system's root certificates, or plain http (local issuers).
    pub fn new(url: &str) -> Result<Self, JwksError> {
        let uri: hyper::Uri = url.parse().map_err(|_| JwksError::BadUrl(url.to_owned()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(JwksError::BadUrl(url.to_owned()));
        }
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|error| JwksError::Unreachable { url: url.to_owned(), cause: error.to_string() })?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self { url: uri, client: Client::builder(TokioExecutor::new()).build(connector) })
    }
}

#[async_trait]
impl JwksSource for HttpJwks {
    async fn fetch(&self) -> Result<JwkSet, JwksError> {
        let url = self.url.to_string();
        let unreachable = |cause: String| JwksError::Unreachable { url: url.clone(), cause };
        let fetch = async {
            let response = self.client.get(self.url.clone()).await.map_err(|error| unreachable(error.to_string()))?;
            let status = response.status().as_u16();
            if status != 200 {
                return Err(JwksError::Status { url: url.clone(), status });
            }
            let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map_err(|error| JwksError::Invalid { url: url.clone(), cause: error.to_string() })?
                .to_bytes();
            serde_json::from_slice(&body)
                .map_err(|error| JwksError::Invalid { url: url.clone(), cause: error.to_string() })
        };
        tokio::time::timeout(JWKS_FETCH_TIMEOUT, fetch)
            .await
            .unwrap_or_else(|_| Err(unreachable(format!("no answer within {:?}", JWKS_FETCH_TIMEOUT))))
    }
}

/// What a key verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// An RSA key: RS256.
    Rsa,
    /// An EC key on P-256: ES256.
    EcP256,
}

/// One signing key of the issuer.
#[derive(Clone)]
pub struct Key {
    /// What it verifies.
    pub kind: KeyKind,
    /// The algorithm the JWK names, if it names one.
    pub algorithm: Option<jsonwebtoken::jwk::KeyAlgorithm>,
    /// The key itself.
    pub decoding: DecodingKey,
}

#[derive(Default)]
struct Cached {
    keys: HashMap<String, Key>,
    last_attempt: Option<Instant>,
    last_error: Option<String>,
}

/// The issuer's keys by key id, fetched when needed.
pub struct KeyCache {
    source: Arc<dyn JwksSource>,
    cached: tokio::sync::Mutex<Cached>,
}

impl KeyCache {
    /// An empty cache over `source`; the first token fetches.
    pub fn new(source: Arc<dyn JwksSource>) -> Self {
        Self { source, cached: tokio::sync::Mutex::default() }
    }

    /// The key named `kid`: from the cache, or from a fetch if the last one is old enough.
    /// `Ok(None)` means the issuer does not have it (or did not at the last fetch).
    pub async fn get(&self, kid: &str) -> Result<Option<Key>, JwksError> {
        let mut cached = self.cached.lock().await;
        if let Some(key) = cached.keys.get(kid) {
            return Ok(Some(key.clone()));
        }
        if cached.last_attempt.is_some_and(|at| at.elapsed() < JWKS_REFETCH_INTERVAL) {
            return match &cached.last_error {
                Some(error) => Err(JwksError::Recently(error.clone())),
                None => Ok(None),
            };
        }
        cached.last_attempt = Some(Instant::now());
        match self.source.fetch().await {
            Ok(set) => {
                cached.keys = usable_keys(&set);
                cached.last_error = None;
                Ok(cached.keys.get(kid).cloned())
            }
            Err(error) => {
                cached.last_error = Some(error.to_string());
                Err(error)
            }
        }
    }
}

/// The signing keys of a set that verify RS256 or ES256, by key id; others are left out.
fn usable_keys(set: &JwkSet) -> HashMap<String, Key> {
    set.keys
        .iter()
        .filter(|jwk| !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)))
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let kind = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => KeyKind::Rsa,
                AlgorithmParameters::EllipticCurve(params) if params.curve == EllipticCurve::P256 => KeyKind::EcP256,
                _ => return None,
            };
            let decoding = DecodingKey::from_jwk(jwk).ok()?;
            Some((kid, Key { kind, algorithm: jwk.common.key_algorithm, decoding }))
        })
        .collect()
}
