//! The bridge: tool calls from an upstream, deduplicated and executed by the dispatcher, answered back.
