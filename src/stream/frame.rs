//! Websocket frames from codex-manager: [`parse_frame`] turns one text frame into a [`Frame`] (a control frame or a
//! [`StreamEvent`] envelope), or a typed [`FrameError`] for anything malformed.

use serde_json::{Map, Value};

use super::signal::AppServerSignal;

/// One frame received on the codex-manager stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// Sent on connect: the thread the socket is filtered to, if any.
    Ready {
        /// The subscribed thread, `None` for a socket that receives every event.
        thread_id: Option<String>,
    },
    /// The answer to a `{"type":"ping"}` command.
    Pong,
    /// The server rejected a command (e.g. `invalid websocket command`).
    Error {
        /// The server's message; the whole frame text when the frame carried no `message` string.
        message: String,
    },
    /// Any other frame: an event envelope.
    Event(StreamEvent),
}

impl Frame {
    /// `true` for `ready`, `pong` and `error` frames.
    pub fn is_control(&self) -> bool {
        !matches!(self, Frame::Event(_))
    }
}

/// An event envelope `{"type", "threadId", "payload"}`.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamEvent {
    /// The event type, e.g. `transcript_updated` or `app_server.request.item.tool.call`.
    pub event_type: String,
    /// The thread the event belongs to; `None` for broadcast events.
    pub thread_id: Option<String>,
    /// The payload, `Value::Null` when the frame had none.
    pub payload: Value,
}

impl StreamEvent {
    /// A new event (handy in tests and for synthetic events).
    pub fn new(event_type: impl Into<String>, thread_id: Option<String>, payload: Value) -> Self {
        Self {
            event_type: event_type.into(),
            thread_id,
            payload,
        }
    }

    /// `true` for app-server pass-through events (type `app_server.*`).
    pub fn is_app_server(&self) -> bool {
        self.event_type.starts_with(super::signal::APP_SERVER_PREFIX)
    }

    /// The app-server signal carried by an `app_server.*` event; `None` for other events or when the payload is not
    /// a signal (no `method` string).
    pub fn app_server_signal(&self) -> Option<AppServerSignal> {
        if !self.is_app_server() {
            return None;
        }
        AppServerSignal::from_payload(&self.event_type, self.thread_id.as_deref(), &self.payload)
    }
}

/// Why a text frame is not a valid codex-manager frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The text is not JSON.
    #[error("frame is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON is not an object.
    #[error("frame is not a JSON object")]
    NotAnObject,
    /// The object has no non-empty `type` string.
    #[error("frame has no \"type\" string")]
    MissingType,
    /// A known field has the wrong JSON type.
    #[error("frame field {field:?} must be {expected}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What it should have been.
        expected: &'static str,
    },
    /// A binary frame that is not UTF-8 text.
    #[error("binary frame is not UTF-8 text")]
    NotText,
}

/// Parses one text frame. Never panics; anything that is not a codex-manager frame is a [`FrameError`].
///
/// ```
/// use skillbridge::stream::{parse_frame, Frame};
///
/// assert_eq!(parse_frame(r#"{"type":"pong"}"#).unwrap(), Frame::Pong);
/// let Frame::Event(event) = parse_frame(r#"{"type":"tool_call_resolved","threadId":"t1","payload":{}}"#).unwrap()
/// else { unreachable!() };
/// assert_eq!(event.event_type, "tool_call_resolved");
/// assert_eq!(event.thread_id.as_deref(), Some("t1"));
/// assert!(parse_frame("{not json").is_err());
/// ```
pub fn parse_frame(text: &str) -> Result<Frame, FrameError> {
    let Value::Object(mut object) = serde_json::from_str::<Value>(text)? else {
        return Err(FrameError::NotAnObject);
    };
    let event_type = match object.remove("type") {
        Some(Value::String(t)) if !t.is_empty() => t,
        _ => return Err(FrameError::MissingType),
    };
    match event_type.as_str() {
        "ready" => Ok(Frame::Ready {
            thread_id: thread_id(&mut object)?,
        }),
        "pong" => Ok(Frame::Pong),
        "error" => Ok(Frame::Error {
            message: match object.remove("message") {
                Some(Value::String(message)) => message,
                _ => text.to_owned(),
            },
        }),
        _ => Ok(Frame::Event(StreamEvent {
            thread_id: thread_id(&mut object)?,
            payload: object.remove("payload").unwrap_or(Value::Null),
            event_type,
        })),
    }
}

fn thread_id(object: &mut Map<String, Value>) -> Result<Option<String>, FrameError> {
    match object.remove("threadId") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) => Ok(Some(id)),
        Some(_) => Err(FrameError::InvalidField {
            field: "threadId",
            expected: "a string or null",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_frames() {
        assert_eq!(
            parse_frame(r#"{"type":"ready","threadId":"abc"}"#).unwrap(),
            Frame::Ready {
                thread_id: Some("abc".into())
            }
        );
        assert_eq!(
            parse_frame(r#"{"type":"ready","threadId":null}"#).unwrap(),
            Frame::Ready { thread_id: None }
        );
        assert_eq!(
            parse_frame(r#"{"type":"error","message":"invalid websocket command"}"#).unwrap(),
            Frame::Error {
                message: "invalid websocket command".into()
            }
        );
        // An error frame without a message keeps its text rather than losing the error.
        assert_eq!(
            parse_frame(r#"{"type":"error"}"#).unwrap(),
            Frame::Error {
                message: r#"{"type":"error"}"#.into()
            }
        );
    }

    #[test]
    fn event_without_payload_or_thread() {
        let Frame::Event(event) = parse_frame(r#"{"type":"heartbeat"}"#).unwrap() else {
            panic!("not an event")
        };
        assert_eq!(event, StreamEvent::new("heartbeat", None, Value::Null));
        assert!(event.app_server_signal().is_none());
    }

    #[test]
    fn malformed_frames_are_typed_errors() {
        assert!(matches!(parse_frame(""), Err(FrameError::Json(_))));
        assert!(matches!(parse_frame("{\"type\":"), Err(FrameError::Json(_))));
        assert!(matches!(parse_frame("[1,2]"), Err(FrameError::NotAnObject)));
        assert!(matches!(parse_frame("\"pong\""), Err(FrameError::NotAnObject)));
        assert!(matches!(parse_frame("{}"), Err(FrameError::MissingType)));
        assert!(matches!(parse_frame(r#"{"type":""}"#), Err(FrameError::MissingType)));
        assert!(matches!(parse_frame(r#"{"type":7}"#), Err(FrameError::MissingType)));
        assert!(matches!(
            parse_frame(r#"{"type":"x","threadId":5}"#),
            Err(FrameError::InvalidField { field: "threadId", .. })
        ));
    }
}
