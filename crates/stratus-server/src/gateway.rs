//! The HTTP gateway: a second listener (`--gateway ADDR`) that serves the `http`
//! (REST, payload 1.0, under `/{stage}/…`) and `httpApi` (HTTP API, payload 2.0)
//! events and function URLs (`url: true`, under `/lambda-url/{function}/…`) of
//! deployed functions, with their CORS settings (`http` events' `cors`,
//! `provider.httpApi.cors`, `url.cors`): preflights answered by the gateway.
//!
//! Routing, event building and response mapping are `stratus-gateway`'s; this module
//! owns the listener, builds the route table from the deployed functions' events
//! (rebuilt after each deployment), and invokes through the scheduler: a function
//! with a `provisioned` alias is invoked through it, so HTTP traffic uses the warm
//! environments. Function errors and malformed results answer 502 behind a REST API,
//! 500 behind an HTTP API, 502 behind a function URL; the integration timeout (29 s
//! for REST APIs, 30 s for HTTP APIs) 504, throttles 429, bodies past 10 MB 413. An
//! HTTP API with CORS puts its CORS headers on these errors and on its 404s too, and
//! answers preflights to any path (see `stratus_gateway::cors`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{Request, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use parking_lot::RwLock;
use stratus_gateway::routes::{RouteSpec, RouteTable};
use stratus_gateway::{CorsConfig, GatewayError, RequestMeta};
use stratus_manifest::model::Event;
use stratus_scheduler::{InvokeError, InvokeRequest, Scheduler};

use crate::model::PROVISIONED_ALIAS;
use crate::registry::Registry;
use crate::store::{DeploymentStore, FunctionEvents, StoreError};

/// The gateway's CORS settings for an HTTP API's or a function URL's `cors`.
fn api_cors(c: &stratus_manifest::model::ApiCors) -> CorsConfig {
    CorsConfig {
        allow_origins: c.allowed_origins.clone(),
        allow_headers: c.allowed_headers.clone(),
        allow_methods: c.allowed_methods.clone(),
        expose_headers: c.exposed_response_headers.clone(),
        allow_credentials: c.allow_credentials,
        max_age: c.max_age,
        ..CorsConfig::default()
    }
}

/// The live route table.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    table: Arc<RwLock<Arc<RouteTable>>>,
}

impl Routes {
    /// Rebuilds the table from every deployed function's events, as
    /// `Triggers::reload` read them. A store error (reading a REST route's
    /// stage) is returned and changes nothing; conflicting routes are logged and
    /// the previous table is kept.
    pub(crate) fn reload(
        &self,
        registry: &Registry,
        deployments: &dyn DeploymentStore,
        all_events: &[FunctionEvents],
    ) -> Result<(), StoreError> {
        let mut specs = Vec::new();
        for (function, events, _) in all_events {
            // A function created without a service has no stage: `dev`.
            let stage = deployments
                .owner_of(function)?
                .map(|(_, stage)| stage)
                .unwrap_or_else(|| "dev".into());
            let qualifier = registry
                .snapshot(function)
                .filter(|s| s.aliases.contains_key(PROVISIONED_ALIAS))
                .map(|_| PROVISIONED_ALIAS.to_string());
            for ev in events {
                let spec = match ev {
                    Event::Http(h) => {
                        let mut spec = RouteSpec::rest(
                            h.method.clone(),
                            h.path.clone(),
                            stage.clone(),
                            function.clone(),
                        );
                        if let Some(c) = &h.cors {
                            spec = spec.with_cors(CorsConfig {
                                allow_origins: c.origins.clone(),
                                allow_headers: c.headers.clone(),
                                allow_methods: c.methods.clone(),
                                allow_credentials: c.allow_credentials,
                                max_age: c.max_age,
                                cache_control: c.cache_control.clone(),
                                ..CorsConfig::default()
                            });
                        }
                        spec
                    }
                    Event::HttpApi(h) => {
                        let path = if h.path == "*" {
                            "$default".to_string()
                        } else {
                            h.path.clone()
                        };
                        let spec = RouteSpec::http_api(h.method.clone(), path, function.clone());
                        // `provider.httpApi.cors`, copied into each route of the API.
                        match &h.cors {
                            Some(c) => spec.with_cors(api_cors(c)),
                            None => spec,
                        }
                    }
                    // `url: true` travels with the events as `{"other": {"kind": "url"}}`.
                    Event::Other { kind, config } if kind == "url" => {
                        let spec = RouteSpec::function_url(function.clone());
                        let url = serde_json::from_value::<stratus_manifest::model::FunctionUrl>(
                            config.clone(),
                        );
                        match url {
                            Ok(stratus_manifest::model::FunctionUrl { cors: Some(c), .. }) => {
                                spec.with_cors(api_cors(&c))
                            }
                            Ok(_) => spec,
                            Err(e) => {
                                tracing::warn!(function, error = %e, "function URL settings unreadable; served without CORS");
                                spec
                            }
                        }
                    }
                    _ => continue,
                };
                specs.push(match &qualifier {
                    Some(q) => spec.with_qualifier(q.clone()),
                    None => spec,
                });
            }
        }
        match RouteTable::new(specs) {
            Ok(table) => *self.table.write() = Arc::new(table),
            Err(e) => tracing::error!(error = %e, "HTTP routes not updated"),
        }
        Ok(())
    }

    /// `(kind, method, public path, function)` of every route, for `info`.
    pub fn list(&self) -> Vec<(String, String, String, String)> {
        self.table
            .read()
            .routes()
            .map(|r| {
                (
                    r.kind().as_str().to_string(),
                    r.method_name().to_string(),
                    r.public_path(),
                    r.function().to_string(),
                )
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
struct GatewayState {
    routes: Routes,
    registry: Arc<Registry>,
    scheduler: Scheduler,
}

/// The gateway's router: every request goes to [`handle`].
pub fn app(routes: Routes, registry: Arc<Registry>, scheduler: Scheduler) -> axum::Router {
    axum::Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(GatewayState {
            routes,
            registry,
            scheduler,
        })
}

fn to_body(r: Response<Bytes>) -> Response<Body> {
    r.map(Body::from)
}

async fn handle(
    State(g): State<GatewayState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request<Body>,
) -> Response<Body> {
    let table = g.routes.table.read().clone();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let origin = parts
        .headers
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let origin = origin.as_deref();
    if let Some(preflight) = table.preflight(&parts.method, &path) {
        let id = stratus_gateway::request::new_request_id(preflight.kind);
        return to_body(preflight.response(origin, &id));
    }
    let matched = match table.lookup(&parts.method, &path) {
        Ok(m) => m,
        Err(e) => {
            let id = stratus_gateway::request::new_request_id(e.kind());
            return to_body(table.error_response(&e, origin, &id));
        }
    };
    let kind = matched.route.kind();
    let meta = RequestMeta::new(
        kind,
        peer.ip(),
        g.registry.identity.account_id.clone(),
        stratus_gateway::request::stable_id(matched.route.function(), 10),
    );
    let error = |e: GatewayError| {
        let mut response = e.to_response(kind, &meta.request_id);
        matched.apply_cors_to_error(origin, response.headers_mut());
        to_body(response)
    };
    let limit = kind.max_request_bytes();
    let body = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(GatewayError::RequestTooLarge),
    };
    let event = stratus_gateway::build_event(&matched, &parts, &body, &meta);
    let Ok(payload) = event.to_json() else {
        return error(GatewayError::IntegrationFailure);
    };
    let resolved = match g
        .registry
        .resolve(matched.route.function(), matched.route.qualifier())
    {
        Ok(r) => r,
        Err(_) => return error(GatewayError::NotFound),
    };
    let invoke = g.scheduler.invoke(
        &resolved.spec,
        InvokeRequest {
            request_id: Arc::from(crate::model::new_uuid()),
            payload: Bytes::from(payload),
            invoked_arn: resolved.invoked_arn.clone(),
            client_context: None,
            tail: false,
        },
    );
    let outcome = match kind.integration_timeout() {
        Some(limit) => match tokio::time::timeout(limit, invoke).await {
            Ok(r) => r,
            Err(_) => return error(GatewayError::Timeout),
        },
        None => invoke.await,
    };
    let out = match outcome {
        Ok(out) if out.function_error => return error(GatewayError::FunctionError),
        Ok(out) => out,
        Err(InvokeError::Throttled(_)) => return error(GatewayError::TooManyRequests),
        // Shutting down, or no environment could start: Lambda refused the
        // invocation, which API Gateway answers with 500.
        Err(InvokeError::ShuttingDown | InvokeError::Start(_)) => {
            return error(GatewayError::IntegrationFailure)
        }
    };
    let mut response = match stratus_gateway::response::map_result(
        kind,
        &out.payload,
        &meta.request_id,
    ) {
        Ok(r) => r,
        Err(malformed) => {
            // API Gateway logs this as "Malformed Lambda proxy response"; the
            // client only sees the generic error.
            tracing::warn!(function = matched.route.function(), error = %malformed, "malformed proxy response");
            return error(GatewayError::MalformedResponse(malformed));
        }
    };
    matched.apply_cors(origin, response.headers_mut());
    to_body(response)
}
