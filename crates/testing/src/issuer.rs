//! A local OpenID issuer: real RSA (RS256) and EC (ES256) keys generated at start, their JWKS
//! served over HTTP, and tokens signed with them, shaped like Amazon Cognito's. Tests verify
//! against it; `make dev-auth` runs it as `dev-issuer`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The app client id the issuer's tokens are for (`aud` of ID tokens, `client_id` of access tokens).
pub const CLIENT_ID: &str = "chat-local";

/// How long minted tokens live.
pub const TOKEN_LIFETIME_SECS: u64 = 3600;

/// One signing key and its public JWK.
#[derive(Clone)]
pub struct Signer {
    /// Its key id.
    pub kid: String,
    /// What it signs with.
    pub algorithm: Algorithm,
    encoding: EncodingKey,
    /// The public half, as the JWKS lists it.
    pub jwk: Jwk,
}

impl Signer {
    /// A fresh 2048-bit RSA key for RS256.
    pub fn rsa(kid: &str) -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("generate an RSA key");
        let pkcs8 = pair.as_der().expect("encode the RSA key");
        let encoding = EncodingKey::from_rsa_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes()).expect("an RSA key");
        Self::new(kid, Algorithm::RS256, encoding)
    }

    /// A fresh P-256 key for ES256.
    pub fn ec(kid: &str) -> Self {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .expect("generate an EC key");
        Self::new(kid, Algorithm::ES256, EncodingKey::from_ec_der(pkcs8.as_ref()))
    }

    fn new(kid: &str, algorithm: Algorithm, encoding: EncodingKey) -> Self {
        let mut jwk = Jwk::from_encoding_key(&encoding, algorithm).expect("the public JWK of a fresh key");
        jwk.common.key_id = Some(kid.to_owned());
        Self { kid: kid.to_owned(), algorithm, encoding, jwk }
    }

    /// `claims` signed with this key, its `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// `claims` signed with this key, naming `kid` in the header (a forgery, or a typo).
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign a token")
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|line| std::str::from_utf8(line).expect("base64")).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is past 1970").as_secs()
}

struct Shared {
    issuer: String,
    keys: RwLock<Vec<Signer>>,
    available: AtomicBool,
    fetches: AtomicUsize,
}

/// The issuer, serving its JWKS at `{issuer}/.well-known/jwks.json` and tokens at `{issuer}/token?user=`.
#[derive(Clone)]
pub struct Issuer {
    shared: Arc<Shared>,
    address: SocketAddr,
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    user: String,
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.fetches.fetch_add(1, Ordering::SeqCst);
    if !shared.available.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "the issuer is down (a test asked it to be)").into_response();
    }
    let keys = shared.keys.read().expect("keys").iter().map(|signer| signer.jwk.clone()).collect();
    axum::Json(JwkSet { keys }).into_response()
}

async fn token(State(shared): State<Arc<Shared>>, Query(query): Query<TokenQuery>) -> Response {
    let signer = shared.keys.read().expect("keys")[0].clone();
    let token = signer.sign(&id_claims(&shared.issuer, &query.user));
    // The dev page fetches tokens from another origin (the gateway's).
    ([(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"), (header::CACHE_CONTROL, "no-store")], token).into_response()
}

/// Claims of a Cognito-style ID token for `user`, valid for [`TOKEN_LIFETIME_SECS`].
pub fn id_claims(issuer: &str, user: &str) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "aud": CLIENT_ID,
        "sub": user,
        "cognito:username": user,
        "token_use": "id",
        "auth_time": now,
        "iat": now,
        "exp": now + TOKEN_LIFETIME_SECS,
    })
}

impl Issuer {
    /// Starts on a free loopback port with one RSA key (`rsa-1`) and one EC key (`ec-1`).
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// Starts on `port` (0 for any free one).
    pub async fn start_on(port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind the issuer's port");
        let address = listener.local_addr().expect("the issuer's address");
        let shared = Arc::new(Shared {
            issuer: format!("http://{address}"),
            keys: RwLock::new(vec![Signer::rsa("rsa-1"), Signer::ec("ec-1")]),
            available: AtomicBool::new(true),
            fetches: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .route("/token", get(token))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { shared, address }
    }

    /// The issuer URL (`iss` of its tokens).
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// Where its JWKS is served.
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.shared.issuer)
    }

    /// Its address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The signer with key id `kid`.
    pub fn signer(&self, kid: &str) -> Signer {
        let keys = self.shared.keys.read().expect("keys");
        keys.iter().find(|signer| signer.kid == kid).cloned().unwrap_or_else(|| panic!("no key {kid}"))
    }

    /// A valid RS256 ID token for `user`.
    pub fn token(&self, user: &str) -> String {
        self.signer("rsa-1").sign(&id_claims(self.issuer(), user))
    }

    /// Adds a key to the JWKS, as an issuer does when it rotates keys.
    pub fn rotate(&self, signer: Signer) {
        self.shared.keys.write().expect("keys").push(signer);
    }

    /// Makes the JWKS answer 503 (`false`) or serve again (`true`).
    pub fn set_available(&self, available: bool) {
        self.shared.available.store(available, Ordering::SeqCst);
    }

    /// How many times the JWKS was requested.
    pub fn fetches(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }
}
