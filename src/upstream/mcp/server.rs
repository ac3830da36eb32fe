//! The rmcp server: [`Handler`] answers `initialize`, `tools/list` and `tools/call` (each call through the
//! dispatcher, see the [module docs](super)), and is served over stdio or streamable HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ErrorData, Implementation, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, ServiceExt};
use secrecy::SecretString;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{NAME, Shared, convert};
use crate::upstream::{ToolCall, UpstreamError};
use crate::util::{bearer_credentials, lock, secret_matches};

/// The route of the streamable HTTP endpoint.
pub(super) const HTTP_PATH: &str = "/mcp";

/// Answers one MCP connection (stdio) or session (HTTP); clones share the upstream.
#[derive(Clone)]
pub(super) struct Handler {
    shared: Arc<Shared>,
}

impl Handler {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The call the dispatcher runs for `request`: its own turn (so that cancelling it cancels only it), the
    /// client's call and thread ids when it sends them in `_meta` (Codex does).
    fn tool_call(&self, request: CallToolRequestParams, context: &RequestContext<RoleServer>) -> ToolCall {
        let number = self.shared.next_call.fetch_add(1, Ordering::Relaxed);
        let request_id = format!("mcp-{number}");
        let meta = &context.meta.0.0;
        let text = |key: &str| meta.get(key).and_then(Value::as_str).map(str::to_owned);
        ToolCall {
            request_id: request_id.clone(),
            thread_id: text("threadId").unwrap_or_else(|| NAME.to_owned()),
            turn_id: Some(request_id.clone()),
            call_id: text("callId").unwrap_or_else(|| context.id.to_string()),
            tool: request.name.into_owned(),
            arguments: request
                .arguments
                .map_or(Value::Object(Default::default()), Value::Object),
        }
    }
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(NAME_OF_SERVER, env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(
            self.shared.tools.get().cloned().unwrap_or_default(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tools = self.shared.tools.get().map(Vec::as_slice).unwrap_or_default();
        let Some(tool) = tools.iter().find(|tool| tool.name == request.name) else {
            let known: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
            return Err(ErrorData::invalid_params(
                format!("no tool named {:?}; the tools are: {}", request.name, known.join(", ")),
                None,
            ));
        };
        let structured = tool.output_schema.is_some();
        let call = self.tool_call(request, &context);
        let turn = call.turn_id.clone().unwrap_or_default();
        let request_id = call.request_id.clone();
        if let Some(token) = context.meta.get_progress_token() {
            lock(&self.shared.progress).insert(request_id.clone(), (context.peer.clone(), token));
        }
        let answer = self.shared.call(call);
        tokio::pin!(answer);
        let result = tokio::select! {
            result = &mut answer => result,
            _ = context.ct.cancelled() => {
                // The skill's token fires; the dispatcher still answers (cancelled), which nobody reads.
                self.shared.cancel(&turn);
                answer.await
            }
        };
        lock(&self.shared.progress).remove(&request_id);
        match result {
            Some(result) => Ok(convert::result(&result, structured).into()),
            None => Err(ErrorData::internal_error("the server is shutting down", None)),
        }
    }
}

/// The name the server gives in `initialize`.
const NAME_OF_SERVER: &str = "skillbridge";

/// Serves one client over stdin and stdout until it disconnects or `stop` fires.
pub(super) async fn serve_stdio(
    handler: Handler,
    shared: &Shared,
    stop: CancellationToken,
) -> Result<(), UpstreamError> {
    let service = handler
        .serve_with_ct(rmcp::transport::stdio(), stop.child_token())
        .await
        .map_err(|error| UpstreamError::Invalid(format!("the MCP client did not initialize: {error}")))?;
    shared.up.store(true, Ordering::Relaxed);
    tracing::info!("MCP client connected on stdio");
    let reason = service.waiting().await;
    shared.up.store(false, Ordering::Relaxed);
    tracing::info!(?reason, "MCP client disconnected");
    Ok(())
}

/// Serves streamable HTTP at `addr` until `stop` fires.
pub(super) async fn serve_http(
    handler: Handler,
    shared: &Shared,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    token: Option<SecretString>,
    stop: CancellationToken,
) -> Result<(), UpstreamError> {
    let mut config = StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token());
    if !addr.ip().is_loopback() {
        // Reached by other hosts' names: the token guards it instead of the Host check.
        config = config.disable_allowed_hosts();
    }
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let mut router = axum::Router::new().route_service(HTTP_PATH, service);
    if let Some(token) = token {
        router = router.layer(axum::middleware::from_fn_with_state(Arc::new(token), require_token));
    }
    let bound = listener.local_addr().unwrap_or(addr);
    shared.up.store(true, Ordering::Relaxed);
    tracing::info!(url = %format!("http://{bound}{HTTP_PATH}"), "MCP server listening");
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    shared.up.store(false, Ordering::Relaxed);
    served.map_err(|error| UpstreamError::Invalid(format!("the MCP server on {bound} failed: {error}")))
}

/// Lets a request through when it carries the token as `Authorization: Bearer`.
async fn require_token(State(token): State<Arc<SecretString>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_credentials);
    match presented {
        Some(presented) if secret_matches(&token, presented) => next.run(request).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or wrong MCP token (send Authorization: Bearer <token>)",
        )
            .into_response(),
    }
}
