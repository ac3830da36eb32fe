//! The app-server calls skillbridge makes ([`AppServerClient`]): `initialize` (+ `initialized`), `thread/start`
//! with the dynamic tools, `turn/start`, `turn/interrupt` and `thread/archive`, each a typed request of
//! [`protocol`](super::protocol) bounded by a timeout.

use std::time::Duration;

use super::error::AppServerError;
use super::protocol::{
    INITIALIZED_METHOD, InitializeParams, InitializeResponse, RequestParams, ThreadArchiveParams, ThreadStartParams,
    TurnInterruptParams, TurnStartParams,
};
use super::rpc::RpcConnection;

/// How long a call to the app-server may take before [`AppServerError::Timeout`].
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The `clientInfo.name` skillbridge introduces itself with.
const CLIENT_NAME: &str = "skillbridge";

/// Typed calls over one [`RpcConnection`].
#[derive(Debug, Clone)]
pub struct AppServerClient {
    rpc: RpcConnection,
    timeout: Duration,
}

impl AppServerClient {
    /// Calls over `rpc`, each bounded by 30 s.
    pub fn new(rpc: RpcConnection) -> Self {
        Self {
            rpc,
            timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Sets the per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The underlying connection.
    pub fn rpc(&self) -> &RpcConnection {
        &self.rpc
    }

    /// `initialize` with the experimental API enabled (dynamic tools need it), then the `initialized`
    /// notification. Returns the server's `initialize` result.
    pub async fn initialize(&self, client_version: &str) -> Result<InitializeResponse, AppServerError> {
        let result = self
            .request(&InitializeParams::new(CLIENT_NAME, client_version))
            .await?;
        self.rpc.notify(INITIALIZED_METHOD, None).await?;
        Ok(result)
    }

    /// `thread/start`; returns the thread id.
    pub async fn start_thread(&self, params: &ThreadStartParams) -> Result<String, AppServerError> {
        Ok(self.request(params).await?.thread.id)
    }

    /// `turn/start` with one text input; returns the turn id.
    pub async fn start_turn(&self, thread_id: &str, text: &str) -> Result<String, AppServerError> {
        Ok(self.request(&TurnStartParams::text(thread_id, text)).await?.turn.id)
    }

    /// `turn/interrupt`: asks Codex to stop the turn; it then completes with status `interrupted`.
    pub async fn interrupt_turn(&self, thread_id: &str, turn_id: &str) -> Result<(), AppServerError> {
        let params = TurnInterruptParams {
            thread_id: thread_id.to_owned(),
            turn_id: turn_id.to_owned(),
        };
        self.request(&params).await.map(drop)
    }

    /// `thread/archive`: Codex moves the thread's history to its archived ones; it is listed only with those.
    pub async fn archive_thread(&self, thread_id: &str) -> Result<(), AppServerError> {
        let params = ThreadArchiveParams {
            thread_id: thread_id.to_owned(),
        };
        self.request(&params).await.map(drop)
    }

    /// Sends one typed request and reads its typed result, within the timeout.
    pub async fn request<P: RequestParams>(&self, params: &P) -> Result<P::Response, AppServerError> {
        let unexpected = |detail: String| AppServerError::UnexpectedResponse {
            method: P::METHOD,
            detail,
        };
        let params = serde_json::to_value(params).map_err(|error| unexpected(error.to_string()))?;
        let result = match tokio::time::timeout(self.timeout, self.rpc.request(P::METHOD, params)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(AppServerError::Timeout {
                    method: P::METHOD,
                    after: self.timeout,
                });
            }
        };
        serde_json::from_value(result.clone()).map_err(|error| unexpected(format!("{error} in {result}")))
    }
}
