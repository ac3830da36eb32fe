//! Clients for the double's tests: a JSON REST helper (reqwest) and a websocket reader
//! (tokio-tungstenite) whose every wait is bounded.

#![allow(dead_code)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use skillbridge_doubles::CodexManagerDouble;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The longest any single wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// `(status, body)` of a REST call.
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

/// A REST client for one double.
pub struct Rest {
    client: reqwest::Client,
    base: String,
    bearer: Option<String>,
}

impl Rest {
    pub fn new(double: &CodexManagerDouble) -> Rest {
        Rest {
            client: reqwest::Client::new(),
            base: double.base_url(),
            bearer: None,
        }
    }

    pub fn with_bearer(double: &CodexManagerDouble, token: &str) -> Rest {
        Rest {
            bearer: Some(token.to_owned()),
            ..Rest::new(double)
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .timeout(WAIT);
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request reaches the double");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("JSON body")
        };
        Reply { status, body }
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call("POST", path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, None).await
    }

    /// `POST /api/tool-calls/:id/response`.
    pub async fn respond(&self, request_id: &str, body: Value) -> Reply {
        self.post(&format!("/api/tool-calls/{request_id}/response"), body).await
    }
}

/// A websocket connected to the double's `/api/stream`.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    /// Connects (optionally with `?threadId=` and a bearer token) and checks the `ready` frame.
    pub async fn connect(double: &CodexManagerDouble, thread_id: Option<&str>) -> Ws {
        let mut ws = Ws::try_connect(double, thread_id, None)
            .await
            .expect("websocket connects");
        let ready = ws.next().await;
        assert_eq!(ready["type"], "ready");
        assert_eq!(ready["threadId"], thread_id.map_or(Value::Null, Value::from));
        ws
    }

    pub async fn try_connect(
        double: &CodexManagerDouble,
        thread_id: Option<&str>,
        bearer: Option<&str>,
    ) -> Result<Ws, tungstenite::Error> {
        let url = match thread_id {
            Some(thread) => format!("{}?threadId={thread}", double.ws_url()),
            None => double.ws_url(),
        };
        let mut request = url.into_client_request()?;
        if let Some(token) = bearer {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().expect("header"));
        }
        let (stream, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("connect within the wait")?;
        Ok(Ws { stream })
    }

    /// The next text frame, parsed; panics after [`WAIT`] or on anything but a text frame.
    pub async fn next(&mut self) -> Value {
        let text = self.next_text().await;
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("frame {text:?} is not JSON: {err}"))
    }

    pub async fn next_text(&mut self) -> String {
        match self.next_message().await {
            Message::Text(text) => text.as_str().to_owned(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next text or binary frame (pings and pongs skipped); panics after [`WAIT`].
    pub async fn next_message(&mut self) -> Message {
        loop {
            let message = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("a frame within the wait")
                .expect("the socket is open")
                .expect("a readable frame");
            if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
                return message;
            }
        }
    }

    /// What the socket yields next once the server stops talking: `None` for a clean end, or the
    /// read error.
    pub async fn end(&mut self) -> Option<String> {
        match tokio::time::timeout(WAIT, self.stream.next())
            .await
            .expect("the socket ends within the wait")
        {
            None => None,
            Some(Err(err)) => Some(err.to_string()),
            Some(Ok(message)) => panic!("expected the socket to end, got {message:?}"),
        }
    }

    /// Reads until the socket ends (within [`WAIT`]); returns the text frames that came first.
    pub async fn frames_until_end(&mut self) -> Vec<String> {
        let mut frames = Vec::new();
        loop {
            match tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("the socket ends within the wait")
            {
                None | Some(Err(_)) => return frames,
                Some(Ok(Message::Text(text))) => frames.push(text.as_str().to_owned()),
                Some(Ok(_)) => {}
            }
        }
    }

    pub async fn send(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream.send(Message::text(text)).await.expect("send");
    }

    /// Sends a ping command and waits for its pong: every frame the server queued before the pong
    /// has then been read or is returned here, in order.
    pub async fn frames_until_pong(&mut self) -> Vec<Value> {
        self.send(serde_json::json!({"type": "ping"})).await;
        let mut frames = Vec::new();
        loop {
            let frame = self.next().await;
            if frame["type"] == "pong" {
                return frames;
            }
            frames.push(frame);
        }
    }
}

/// Polls `condition` every few milliseconds until it holds; false after [`WAIT`].
pub async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    condition()
}

/// A valid dynamic tool definition.
pub fn tool(name: &str) -> Value {
    serde_json::json!({
        "type": "function",
        "name": name,
        "description": format!("The {name} tool"),
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
    })
}
