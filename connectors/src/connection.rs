//! Using a connection: where its requests go, the credentials they carry, and OAuth2 (the
//! authorization-code grant with PKCE and `state`, and refreshing tokens) with the `oauth2`
//! crate over the guarded client.

use std::future::Future;
use std::pin::Pin;

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, Scope, TokenResponse, TokenUrl,
};
use serde_json::{Value, json};
use timix_engine::automation::connections::{ConnectionKind, Resolved};
use timix_engine::store::clock::now_ms;

use crate::outbound::Outbound;

/// A connection's request target: a path below its base URL, or an absolute URL on the same
/// origin (credentials never travel to another host).
pub fn url_on(connection: &Resolved, target: &str) -> Result<String, String> {
    let Some(base) = connection.base_url.as_deref() else {
        return Err(format!(
            "the {} connection has no base URL to call {target} on",
            connection.kind
        ));
    };
    if target.starts_with('/') {
        return Ok(format!("{base}{target}"));
    }
    let origin = |u: &str| url::Url::parse(u).ok().map(|u| u.origin());
    match (origin(base), origin(target)) {
        (Some(a), Some(b)) if a == b => Ok(target.to_owned()),
        _ => Err(format!(
            "{target} is not on the connection's base URL {base}: its credentials stay there"
        )),
    }
}

/// Adds the connection's credentials to a request.
pub fn authorize(
    builder: reqwest::RequestBuilder,
    connection: &Resolved,
) -> reqwest::RequestBuilder {
    let secret = &connection.secret;
    match connection.kind {
        ConnectionKind::ApiKey => {
            let prefix = connection.settings["prefix"].as_str().unwrap_or("");
            let key = secret["apiKey"].as_str().unwrap_or_default();
            // A key in the query goes in with the URL (see `query_key`).
            if connection.settings["query"].is_string() {
                return builder;
            }
            let header = connection.settings["header"]
                .as_str()
                .unwrap_or("X-Api-Key");
            builder.header(header, format!("{prefix}{key}"))
        }
        ConnectionKind::Bearer => builder.bearer_auth(secret["token"].as_str().unwrap_or_default()),
        ConnectionKind::Basic => builder.basic_auth(
            secret["username"].as_str().unwrap_or_default(),
            secret["password"].as_str(),
        ),
        ConnectionKind::OAuth2 | ConnectionKind::OAuth2ClientCredentials => {
            match secret["accessToken"].as_str() {
                Some(token) => builder.bearer_auth(token),
                None => builder,
            }
        }
        ConnectionKind::This | ConnectionKind::NoAuth => builder,
    }
}

/// The query parameter and value of an API key sent in the query, for a connection that does.
pub fn query_key(connection: &Resolved) -> Option<(&str, String)> {
    if connection.kind != ConnectionKind::ApiKey {
        return None;
    }
    let param = connection.settings["query"].as_str()?;
    let prefix = connection.settings["prefix"].as_str().unwrap_or("");
    let key = connection.secret["apiKey"].as_str().unwrap_or_default();
    Some((param, format!("{prefix}{key}")))
}

/// Whether an OAuth2 access token is missing or expires within a minute.
pub fn token_expiring(connection: &Resolved) -> bool {
    connection.kind.is_oauth()
        && (connection.secret["accessToken"].is_null()
            || connection.secret["expiresAt"]
                .as_i64()
                .is_some_and(|at| at <= now_ms() + 60_000))
}

/// The `oauth2` crate over our guarded client (no redirects, private addresses as configured).
struct OAuthHttp<'a>(&'a Outbound);

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthHttp<'_> {
    type Error = oauth2::HttpClientError<reqwest::Error>;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            // The guard's checks of the URL itself (scheme, address literals): names are
            // checked when they are resolved.
            if let Err(refused) = self.0.check(&request.uri().to_string()) {
                return Err(oauth2::HttpClientError::Other(format!(
                    "the token endpoint is refused: {refused}"
                )));
            }
            let request = reqwest::Request::try_from(request).map_err(Box::new)?;
            let response = self.0.client().execute(request).await.map_err(Box::new)?;
            let mut answer = oauth2::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            Ok(answer.body(response.bytes().await.map_err(Box::new)?.to_vec())?)
        })
    }
}

type Client = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn client(connection: &Resolved, redirect: &str) -> Result<Client, String> {
    let settings = &connection.settings;
    let text = |key: &str| settings[key].as_str().unwrap_or_default().to_owned();
    // A client-credentials grant has no authorization page; the crate wants one all the same.
    let authorize = match settings["authorizeUrl"].as_str() {
        Some(url) => url.to_owned(),
        None => text("tokenUrl"),
    };
    let mut client = BasicClient::new(ClientId::new(text("clientId")))
        .set_auth_uri(AuthUrl::new(authorize).map_err(|e| format!("authorizeUrl: {e}"))?)
        .set_token_uri(TokenUrl::new(text("tokenUrl")).map_err(|e| format!("tokenUrl: {e}"))?)
        .set_redirect_uri(
            RedirectUrl::new(redirect.to_owned()).map_err(|e| format!("redirect: {e}"))?,
        );
    if let Some(secret) = connection.secret["clientSecret"].as_str() {
        client = client.set_client_secret(ClientSecret::new(secret.to_owned()));
    }
    Ok(client)
}

/// The provider's authorization URL for `state`, and the PKCE verifier to keep until the
/// callback.
pub fn authorization_url(
    connection: &Resolved,
    redirect: &str,
    state: &str,
) -> Result<(String, String), String> {
    let client = client(connection, redirect)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let scopes = connection.settings["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| Scope::new(s.to_owned()));
    let mut request = client
        .authorize_url(|| CsrfToken::new(state.to_owned()))
        .add_scopes(scopes)
        .set_pkce_challenge(challenge);
    for (name, value) in connection.settings["authorizeParams"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if let Some(value) = value.as_str() {
            request = request.add_extra_param(name.clone(), value.to_owned());
        }
    }
    let (url, _) = request.url();
    Ok((url.to_string(), verifier.secret().clone()))
}

/// The connection's secret with new tokens in it (a refresh may not return a new refresh token:
/// the old one is kept then).
fn with_tokens(secret: &Value, token: &oauth2::basic::BasicTokenResponse) -> Value {
    let mut secret = secret.clone();
    if let Some(object) = secret.as_object_mut() {
        object.insert("accessToken".into(), json!(token.access_token().secret()));
        if let Some(refresh) = token.refresh_token() {
            object.insert("refreshToken".into(), json!(refresh.secret()));
        }
        let expires_at = token
            .expires_in()
            .map(|d| now_ms() + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2));
        object.insert("expiresAt".into(), json!(expires_at));
        object.remove("verifier");
        object.remove("verifierAt");
    }
    secret
}

fn describe(error: impl std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// Exchanges the authorization code; the secret with the tokens.
pub async fn exchange_code(
    outbound: &Outbound,
    connection: &Resolved,
    redirect: &str,
    code: &str,
) -> Result<Value, String> {
    let verifier = connection.secret["verifier"]
        .as_str()
        .ok_or("no authorization is under way for this connection")?;
    let token = client(connection, redirect)?
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
        .request_async(&OAuthHttp(outbound))
        .await
        .map_err(|e| format!("the token endpoint refused the code: {}", describe(e)))?;
    Ok(with_tokens(&connection.secret, &token))
}

/// Why a refresh failed.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshError {
    /// The provider refused it (or the connection cannot refresh): connect again.
    Refused(String),
    /// The provider could not be reached, or answered what is not a token: try again later.
    Unavailable(String),
}

/// Refreshes the access token (a client-credentials connection asks for a new one); the secret
/// with the new tokens.
pub async fn refresh(
    outbound: &Outbound,
    connection: &Resolved,
    redirect: &str,
) -> Result<Value, RefreshError> {
    if connection.kind == ConnectionKind::OAuth2ClientCredentials {
        return client_credentials(outbound, connection, redirect).await;
    }
    let refresh = connection.secret["refreshToken"].as_str().ok_or_else(|| {
        RefreshError::Refused("the provider gave no refresh token: connect again".into())
    })?;
    let client = client(connection, redirect).map_err(RefreshError::Refused)?;
    let token = client
        .exchange_refresh_token(&RefreshToken::new(refresh.to_owned()))
        .request_async(&OAuthHttp(outbound))
        .await
        .map_err(|e| {
            let refused = matches!(e, oauth2::RequestTokenError::ServerResponse(_));
            let message = format!("the token refresh failed: {}", describe(e));
            if refused {
                RefreshError::Refused(message)
            } else {
                RefreshError::Unavailable(message)
            }
        })?;
    Ok(with_tokens(&connection.secret, &token))
}

/// A token from the client-credentials grant.
async fn client_credentials(
    outbound: &Outbound,
    connection: &Resolved,
    redirect: &str,
) -> Result<Value, RefreshError> {
    let client = client(connection, redirect).map_err(RefreshError::Refused)?;
    let scopes = connection.settings["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| Scope::new(s.to_owned()));
    let token = client
        .exchange_client_credentials()
        .add_scopes(scopes)
        .request_async(&OAuthHttp(outbound))
        .await
        .map_err(|e| {
            let refused = matches!(e, oauth2::RequestTokenError::ServerResponse(_));
            let message = format!("the token request failed: {}", describe(e));
            if refused {
                RefreshError::Refused(message)
            } else {
                RefreshError::Unavailable(message)
            }
        })?;
    Ok(with_tokens(&connection.secret, &token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(kind: &str, base: Option<&str>) -> Resolved {
        Resolved {
            id: "con_1".into(),
            org_id: "org_1".into(),
            kind: kind.parse().unwrap(),
            base_url: base.map(str::to_owned),
            settings: json!({"header": "Authorization", "prefix": "Bearer "}),
            secret: json!({"apiKey": "k"}),
        }
    }

    #[test]
    fn credentials_stay_on_the_connections_origin() {
        let c = connection("api_key", Some("https://api.example.com/v1"));
        assert_eq!(
            url_on(&c, "/contacts").unwrap(),
            "https://api.example.com/v1/contacts"
        );
        assert_eq!(
            url_on(&c, "https://api.example.com/v2/x").unwrap(),
            "https://api.example.com/v2/x"
        );
        assert!(url_on(&c, "https://evil.example.com/v1/contacts").is_err());
        assert!(
            url_on(&c, "http://api.example.com/v1/contacts").is_err(),
            "scheme is part of the origin"
        );
        assert!(url_on(&connection("self", None), "/x").is_err());
    }

    #[test]
    fn an_api_key_goes_in_its_header_with_its_prefix() {
        crate::outbound::install_crypto_provider();
        let client = reqwest::Client::new();
        let request = authorize(
            client.get("https://api.example.com/"),
            &connection("api_key", Some("https://api.example.com")),
        )
        .build()
        .unwrap();
        assert_eq!(request.headers()["authorization"], "Bearer k");
    }
}
