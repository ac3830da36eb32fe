//! Websocket frames from codex-manager: [`parse_frame`] turns one text frame into a [`Frame`] (a control frame or a
//! [`StreamEvent`] envelope), or a typed [`FrameError`] for anything malformed.

use serde_json::Value;

use super::envelope::{Envelope, Field, Payload, Plan, read_envelope};
use super::router::Interest;

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
    Json(serde_json::Error),
    /// The JSON nests deeper than the 128 levels it is read to (serde_json's recursion limit), e.g. a tool call whose
    /// arguments nest some 125 levels deep. The call itself is then found by pending-call listing, or reported
    /// there as unreadable.
    #[error("frame nests deeper than the 128 levels JSON is read to ({0})")]
    TooDeep(serde_json::Error),
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

impl From<serde_json::Error> for FrameError {
    fn from(error: serde_json::Error) -> Self {
        if crate::manager::is_too_deep(&error) {
            Self::TooDeep(error)
        } else {
            Self::Json(error)
        }
    }
}

impl FrameError {
    /// Every [`kind`](Self::kind), in declaration order.
    pub const KINDS: [&'static str; 6] = [
        "not_json",
        "too_deep",
        "not_an_object",
        "missing_type",
        "invalid_field",
        "not_text",
    ];

    /// A short label of the error's kind (one of [`KINDS`](Self::KINDS)), for metrics and logs: `not_json`,
    /// `too_deep`, `not_an_object`, `missing_type`, `invalid_field` or `not_text`.
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    pub(crate) fn kind_index(&self) -> usize {
        match self {
            Self::Json(_) => 0,
            Self::TooDeep(_) => 1,
            Self::NotAnObject => 2,
            Self::MissingType => 3,
            Self::InvalidField { .. } => 4,
            Self::NotText => 5,
        }
    }
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
    let envelope = read_envelope(text, &|_| Plan::Value, Plan::Value)?.ok_or(FrameError::NotAnObject)?;
    into_frame(envelope, text)
}

/// What the socket task does with a frame: hand it to the handlers, or count it and let it go.
// Moved once per frame; boxing the large variant would cost an allocation per tool call.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub(crate) enum Screened {
    /// A frame for the handlers: a control frame, or an event some handler takes as a [`StreamEvent`].
    Frame(Frame),
    /// An event that only app-server signal handlers take, read straight into its signal (`None`: the payload is
    /// not a signal); no `Value` was built for it but its `params`.
    Signal {
        /// The event type.
        event_type: String,
        /// The signal.
        signal: Option<AppServerSignal>,
    },
    /// A valid event frame that no handler takes. Its payload was checked to be JSON but not built.
    Unwanted,
}

/// [`parse_frame`] for the socket task, building only what the handlers will see ([`Interest`] of each event type):
/// nothing for an event no handler takes (it is checked like every frame, so a malformed one is still a
/// [`FrameError`]), the signal alone for an event only signal handlers take, the whole event otherwise. Control
/// frames always come back whole.
pub(crate) fn screen_frame(text: &str, interest: &dyn Fn(&str) -> Interest) -> Result<Screened, FrameError> {
    let plan = |kind: &str| match interest(kind) {
        _ if is_control(kind) => Plan::Skip,
        Interest::None => Plan::Skip,
        Interest::Signals => Plan::Signal,
        Interest::Events => Plan::Value,
    };
    let envelope = read_envelope(text, &plan, Plan::Skip)?.ok_or(FrameError::NotAnObject)?;
    if let Field::Str(kind) = &envelope.kind
        && !kind.is_empty()
        && !is_control(kind)
    {
        match interest(kind) {
            Interest::None => {
                thread_id(&envelope.thread_id)?;
                return Ok(Screened::Unwanted);
            }
            // The payload came before the type, so it was skipped before anyone knew it was wanted: read it again.
            _ if matches!(envelope.payload, Payload::Skipped) => return parse_frame(text).map(Screened::Frame),
            Interest::Signals => {
                let thread_id = thread_id(&envelope.thread_id)?;
                let signal = match envelope.payload {
                    Payload::Signal(fields) => fields.into_signal(kind, thread_id.as_deref()),
                    Payload::Built(payload) => AppServerSignal::from_owned_payload(kind, thread_id.as_deref(), payload),
                    Payload::Absent | Payload::Skipped => None,
                };
                return Ok(Screened::Signal {
                    event_type: kind.as_ref().to_owned(),
                    signal,
                });
            }
            Interest::Events => {}
        }
    }
    into_frame(envelope, text).map(Screened::Frame)
}

fn is_control(kind: &str) -> bool {
    matches!(kind, "ready" | "pong" | "error")
}

fn into_frame(envelope: Envelope<'_>, text: &str) -> Result<Frame, FrameError> {
    let kind = match &envelope.kind {
        Field::Str(kind) if !kind.is_empty() => kind.as_ref(),
        _ => return Err(FrameError::MissingType),
    };
    match kind {
        "ready" => Ok(Frame::Ready {
            thread_id: thread_id(&envelope.thread_id)?,
        }),
        "pong" => Ok(Frame::Pong),
        "error" => Ok(Frame::Error {
            message: match envelope.message {
                Field::Str(message) => message.into_owned(),
                _ => text.to_owned(),
            },
        }),
        _ => Ok(Frame::Event(StreamEvent {
            thread_id: thread_id(&envelope.thread_id)?,
            event_type: kind.to_owned(),
            payload: match envelope.payload {
                Payload::Built(payload) => payload,
                Payload::Signal(_) | Payload::Absent | Payload::Skipped => Value::Null,
            },
        })),
    }
}

fn thread_id(field: &Field<'_>) -> Result<Option<String>, FrameError> {
    match field {
        Field::Absent | Field::Null => Ok(None),
        Field::Str(id) => Ok(Some(id.as_ref().to_owned())),
        Field::Other => Err(FrameError::InvalidField {
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
    fn too_deep_is_its_own_kind() {
        let deep = |depth: usize| {
            format!(
                r#"{{"type":"app_server.request.item.tool.call","threadId":"t","payload":{{"method":"item/tool/call","requestId":3,"params":{{"arguments":{}1{}}}}}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
        };
        // The envelope, payload and params take three levels of the 127 that read.
        assert!(parse_frame(&deep(124)).is_ok());
        let error = parse_frame(&deep(125)).unwrap_err();
        assert!(matches!(error, FrameError::TooDeep(_)), "{error:?}");
        assert_eq!(error.kind(), "too_deep");
        assert!(
            error.to_string().starts_with("frame nests deeper than the 128 levels"),
            "{error}"
        );
        for interest in [Interest::Signals, Interest::Events] {
            let screened = screen_frame(&deep(100_000), &|_| interest).unwrap_err();
            assert_eq!(screened.kind(), "too_deep", "{interest:?}");
        }
        // A payload nobody wants is only checked, to any depth.
        assert_eq!(
            screen_frame(&deep(100_000), &|_| Interest::None).unwrap(),
            Screened::Unwanted
        );
        assert_eq!(parse_frame("{").unwrap_err().kind(), "not_json");
        assert_eq!(parse_frame("[]").unwrap_err().kind(), "not_an_object");
        assert_eq!(FrameError::NotText.kind(), "not_text");
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

    /// Every captured codex-manager frame, read through both paths.
    #[test]
    fn screening_agrees_with_parse_frame_on_every_captured_frame() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/codex-manager");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.starts_with("ws-") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let parsed = parse_frame(&text).unwrap();
            assert_eq!(
                screen_frame(&text, &|_| Interest::Events).unwrap(),
                Screened::Frame(parsed.clone()),
                "{name}"
            );
            if let Frame::Event(event) = &parsed {
                let expected = Screened::Signal {
                    event_type: event.event_type.clone(),
                    signal: AppServerSignal::from_payload(
                        &event.event_type,
                        event.thread_id.as_deref(),
                        &event.payload,
                    ),
                };
                assert_eq!(screen_frame(&text, &|_| Interest::Signals).unwrap(), expected, "{name}");
            }
            let unwanted = screen_frame(&text, &|_| Interest::None).unwrap();
            if parsed.is_control() {
                assert_eq!(
                    unwanted,
                    Screened::Frame(parsed),
                    "{name}: control frames are always delivered"
                );
            } else {
                assert_eq!(unwanted, Screened::Unwanted, "{name}");
            }
            checked += 1;
        }
        assert!(checked >= 10, "only {checked} captured frames found in {dir}");
    }

    #[test]
    fn a_wanted_payload_is_read_wherever_it_stands() {
        let kind = "app_server.request.item.tool.call";
        let first = r#"{"payload":{"method":"item/tool/call","requestId":0},"threadId":"t","type":"app_server.request.item.tool.call"}"#;
        let last = r#"{"type":"app_server.request.item.tool.call","threadId":"t","payload":{"method":"item/tool/call","requestId":0}}"#;
        let payload = serde_json::json!({"method": "item/tool/call", "requestId": 0});
        for text in [first, last] {
            let Screened::Frame(Frame::Event(event)) = screen_frame(text, &|_| Interest::Events).unwrap() else {
                panic!("not delivered: {text}")
            };
            assert_eq!(event, StreamEvent::new(kind, Some("t".into()), payload.clone()));
            let signal = AppServerSignal::from_payload(kind, Some("t"), &payload);
            assert!(signal.is_some());
            let expected = match text {
                // Read twice, as a whole frame: the router makes the signal from the event.
                _ if text == first => Screened::Frame(Frame::Event(event)),
                _ => Screened::Signal {
                    event_type: kind.into(),
                    signal,
                },
            };
            assert_eq!(screen_frame(text, &|_| Interest::Signals).unwrap(), expected, "{text}");
        }
        let no_signal = r#"{"type":"app_server.x","payload":"text"}"#;
        assert_eq!(
            screen_frame(no_signal, &|_| Interest::Signals).unwrap(),
            Screened::Signal {
                event_type: "app_server.x".into(),
                signal: None
            }
        );
    }

    #[test]
    fn unwanted_frames_are_still_checked() {
        let nobody = |_: &str| Interest::None;
        assert_eq!(
            screen_frame(
                r#"{"type":"tool_call_requested","threadId":"t","payload":{"a":[1]}}"#,
                &nobody
            )
            .unwrap(),
            Screened::Unwanted
        );
        assert!(matches!(
            screen_frame(r#"{"type":"tool_call_requested","payload":{"a":}}"#, &nobody),
            Err(FrameError::Json(_))
        ));
        assert!(matches!(
            screen_frame(r#"{"payload":{"a":1},"type":"x"} x"#, &nobody),
            Err(FrameError::Json(_))
        ));
        assert!(matches!(
            screen_frame(r#"{"type":"x","threadId":5}"#, &nobody),
            Err(FrameError::InvalidField { field: "threadId", .. })
        ));
        assert!(matches!(
            screen_frame(r#"{"type":""}"#, &|_| Interest::Events),
            Err(FrameError::MissingType)
        ));
        assert!(matches!(
            screen_frame(r#"{"type":[]}"#, &nobody),
            Err(FrameError::MissingType)
        ));
        assert!(matches!(screen_frame("[1]", &nobody), Err(FrameError::NotAnObject)));
        assert_eq!(
            screen_frame(r#"{"type":"pong"}"#, &nobody).unwrap(),
            Screened::Frame(Frame::Pong)
        );
    }
}
