//! The HTTP gateway: a second listener (`--gateway ADDR`) that serves the `http`
//! (REST, payload 1.0, under `/{stage}/…`) and `httpApi` (HTTP API, payload 2.0)
//! events and function URLs (`url: true`, under `/lambda-url/{function}/…`) of
//! deployed functions, with their CORS settings (`http` events' `cors`,
//! `provider.httpApi.cors`, `url.cors`): preflights answered by the gateway.
//!
//! A request's whole sequence (routing, event building, response mapping, CORS) is
//! `stratus_gateway::serve`; this module owns the listener, builds the route table
//! from the deployed functions' events (rebuilt after each deployment), and hands
//! `serve` the invocation, through the scheduler: a function
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
use parking_lot::RwLock;
use stratus_gateway::routes::{Route, RouteSpec, RouteTable};
use stratus_gateway::{CorsConfig, GatewayError};
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

/// Answers a request with the live route table: the sequence is
/// `stratus_gateway::serve`'s; this supplies the invocation.
async fn handle(
    State(g): State<GatewayState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request<Body>,
) -> Response<Body> {
    crate::auth::strip_session_cookie(req.headers_mut());
    let table = g.routes.table.read().clone();
    // A caller's X-Ray trace carries into the invocation, as through API Gateway.
    let trace_id = req
        .headers()
        .get("x-amzn-trace-id")
        .and_then(|v| v.to_str().ok())
        .and_then(stratus_scheduler::trace::propagate);
    let response = stratus_gateway::serve(
        &table,
        req,
        peer.ip(),
        &g.registry.identity.account_id,
        |route, payload| invoke(&g, route, payload, trace_id.clone()),
    )
    .await;
    response.map(Body::from)
}

/// Invokes a route's function through the scheduler, within the route's
/// integration timeout, and names a failure as the gateway answers it.
async fn invoke(
    g: &GatewayState,
    route: &Route,
    payload: Bytes,
    trace_id: Option<Arc<str>>,
) -> Result<Bytes, GatewayError> {
    let resolved = g
        .registry
        .resolve(route.function(), route.qualifier())
        .map_err(|_| GatewayError::NotFound)?;
    let invoke = g.scheduler.invoke(
        &resolved.spec,
        InvokeRequest {
            request_id: Arc::from(crate::model::new_uuid()),
            payload,
            invoked_arn: resolved.invoked_arn.clone(),
            client_context: None,
            tail: false,
            trace_id,
        },
    );
    let outcome = match route.kind().integration_timeout() {
        Some(limit) => tokio::time::timeout(limit, invoke)
            .await
            .map_err(|_| GatewayError::Timeout)?,
        None => invoke.await,
    };
    match outcome {
        Ok(out) if out.function_error => Err(GatewayError::FunctionError),
        Ok(out) => Ok(out.payload),
        Err(InvokeError::Throttled(_)) => Err(GatewayError::TooManyRequests),
        // Shutting down, or no environment could start: Lambda refused the
        // invocation, which API Gateway answers with 500.
        Err(InvokeError::ShuttingDown | InvokeError::Start(_)) => {
            Err(GatewayError::IntegrationFailure)
        }
    }
}
