//! One pass over a frame's top level: `type`, `threadId` and `message` as found, the payload built into a
//! `Value` or only checked, every other key skipped. [`parse_frame`](super::parse_frame) and the socket task's
//! [`screen_frame`](super::frame::screen_frame) both read frames through this, so they agree on what is malformed.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::frame::FrameError;

/// The top level of a frame.
#[derive(Debug)]
pub(crate) struct Envelope<'a> {
    pub(crate) kind: Field<'a>,
    pub(crate) thread_id: Field<'a>,
    pub(crate) message: Field<'a>,
    pub(crate) payload: Payload,
}

/// What became of the `payload` key.
#[derive(Debug, PartialEq)]
pub(crate) enum Payload {
    /// The frame has none.
    Absent,
    /// Built.
    Built(Value),
    /// Checked to be JSON, not built.
    Skipped,
}

/// A JSON value where a string is expected: the string (borrowed from the frame when it has no escapes), `null`,
/// or anything else (checked, not kept).
#[derive(Debug, PartialEq)]
pub(crate) enum Field<'a> {
    Absent,
    Null,
    Str(Cow<'a, str>),
    Other,
}

/// Reads the envelope of `text`; `Ok(None)` when it is JSON but not an object. The payload is built when the
/// type is already known and `build(type)` says so, or, when the payload comes before the type, if
/// `build_unknown`.
pub(crate) fn read_envelope<'a>(
    text: &'a str,
    build: &dyn Fn(&str) -> bool,
    build_unknown: bool,
) -> Result<Option<Envelope<'a>>, FrameError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let envelope = deserializer.deserialize_any(EnvelopeVisitor { build, build_unknown })?;
    deserializer.end()?;
    Ok(envelope)
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| Field::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map).map(|_| Field::Other)
    }
}

/// The top-level keys that matter.
enum Key {
    Type,
    ThreadId,
    Message,
    Payload,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match key {
            "type" => Key::Type,
            "threadId" => Key::ThreadId,
            "message" => Key::Message,
            "payload" => Key::Payload,
            _ => Key::Other,
        })
    }
}

/// `Some(envelope)` for an object, `None` for any other JSON value.
struct EnvelopeVisitor<'b> {
    build: &'b dyn Fn(&str) -> bool,
    build_unknown: bool,
}

impl EnvelopeVisitor<'_> {
    fn builds_payload(&self, kind: &Field<'_>) -> bool {
        match kind {
            Field::Absent => self.build_unknown,
            Field::Str(kind) => (self.build)(kind),
            Field::Null | Field::Other => false,
        }
    }
}

impl<'de> Visitor<'de> for EnvelopeVisitor<'_> {
    type Value = Option<Envelope<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = Envelope {
            kind: Field::Absent,
            thread_id: Field::Absent,
            message: Field::Absent,
            payload: Payload::Absent,
        };
        // A repeated key counts with its last value, as when the frame is read into a `Value`.
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Type => envelope.kind = map.next_value()?,
                Key::ThreadId => envelope.thread_id = map.next_value()?,
                Key::Message => envelope.message = map.next_value()?,
                Key::Payload if self.builds_payload(&envelope.kind) => {
                    envelope.payload = Payload::Built(map.next_value()?);
                }
                Key::Payload => {
                    map.next_value::<IgnoredAny>()?;
                    envelope.payload = Payload::Skipped;
                }
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(envelope))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Envelope<'_> {
        read_envelope(text, &|kind| kind == "wanted", false).unwrap().unwrap()
    }

    #[test]
    fn payload_is_built_only_for_wanted_types_seen_first() {
        assert_eq!(
            read(r#"{"type":"wanted","payload":{"a":[1,2]}}"#).payload,
            Payload::Built(serde_json::json!({"a": [1, 2]}))
        );
        assert_eq!(read(r#"{"type":"other","payload":{"a":1}}"#).payload, Payload::Skipped);
        assert_eq!(read(r#"{"payload":{"a":1},"type":"wanted"}"#).payload, Payload::Skipped);
        assert_eq!(read(r#"{"type":"wanted"}"#).payload, Payload::Absent);
    }

    #[test]
    fn fields_borrow_unless_escaped_and_last_duplicate_wins() {
        let envelope = read(r#"{"type":"a","type":"b\"c","threadId":null,"message":7,"x":{"y":[]}}"#);
        assert_eq!(envelope.kind, Field::Str(Cow::Owned("b\"c".into())));
        assert!(matches!(
            read(r#"{"type":"plain"}"#).kind,
            Field::Str(Cow::Borrowed("plain"))
        ));
        assert_eq!(envelope.thread_id, Field::Null);
        assert_eq!(envelope.message, Field::Other);
    }

    #[test]
    fn skipped_parts_are_still_checked() {
        assert!(read_envelope(r#"{"type":"other","payload":{"a":}}"#, &|_| false, false).is_err());
        assert!(read_envelope(r#"{"type":"other","x":[1,}"#, &|_| false, false).is_err());
        assert!(read_envelope(r#"{"type":"other"} trailing"#, &|_| false, false).is_err());
        assert!(read_envelope("[1,2]", &|_| false, false).unwrap().is_none());
        assert!(read_envelope("\"text\"", &|_| false, false).unwrap().is_none());
    }
}
