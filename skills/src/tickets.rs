//! Support tickets: look one up by id, or search them with a structured query.
//!
//! The tickets live in a [`TicketStore`], the skills' shared state (`State<TicketStore>`): the binary supplies
//! [`TicketStore::sample`], a small table standing in for a help desk; a program of its own supplies its tickets.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use skillbridge::skill::SkillError;
use skillbridge::{State, skill};

/// Tickets returned by a search that gives no limit.
const DEFAULT_SEARCH_RESULTS: u32 = 10;

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Waiting for someone to pick it up.
    Open,
    /// Someone is working on it.
    InProgress,
    /// Fixed, waiting for the reporter to confirm.
    Resolved,
    /// Done.
    Closed,
}

/// How urgent a ticket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

/// A support ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Ticket {
    /// The ticket id, like `T-1001`.
    pub id: &'static str,
    /// A one-line summary.
    pub title: &'static str,
    pub status: TicketStatus,
    pub priority: Priority,
    /// Who works on it, if anyone.
    pub assignee: Option<&'static str>,
    /// Free-form labels.
    pub tags: &'static [&'static str],
    /// The day it was opened (`YYYY-MM-DD`).
    pub opened: &'static str,
}

/// The tickets the skills look up and search.
#[derive(Debug, Clone, Default)]
pub struct TicketStore {
    tickets: Vec<Ticket>,
}

impl TicketStore {
    /// A store holding `tickets`.
    pub fn new(tickets: Vec<Ticket>) -> Self {
        Self { tickets }
    }

    /// The sample help desk the binary ships with (six tickets, `T-1001` to `T-1006`).
    pub fn sample() -> Self {
        Self::new(SAMPLE_TICKETS.to_vec())
    }
}

const SAMPLE_TICKETS: &[Ticket] = &[
    Ticket {
        id: "T-1001",
        title: "Login page times out behind the corporate proxy",
        status: TicketStatus::Open,
        priority: Priority::High,
        assignee: None,
        tags: &["auth", "network"],
        opened: "2026-10-02",
    },
    Ticket {
        id: "T-1002",
        title: "Export to CSV drops the last row",
        status: TicketStatus::InProgress,
        priority: Priority::Normal,
        assignee: Some("mara"),
        tags: &["export", "data"],
        opened: "2026-10-05",
    },
    Ticket {
        id: "T-1003",
        title: "Invoice PDF shows the wrong currency symbol",
        status: TicketStatus::Resolved,
        priority: Priority::Normal,
        assignee: Some("jonas"),
        tags: &["billing", "i18n"],
        opened: "2026-10-11",
    },
    Ticket {
        id: "T-1004",
        title: "Password reset email never arrives",
        status: TicketStatus::Open,
        priority: Priority::Urgent,
        assignee: Some("mara"),
        tags: &["auth", "email"],
        opened: "2026-10-20",
    },
    Ticket {
        id: "T-1005",
        title: "Dark mode makes chart labels unreadable",
        status: TicketStatus::Closed,
        priority: Priority::Low,
        assignee: Some("li"),
        tags: &["ui"],
        opened: "2026-09-14",
    },
    Ticket {
        id: "T-1006",
        title: "Bulk import rejects files with a byte order mark",
        status: TicketStatus::InProgress,
        priority: Priority::High,
        assignee: Some("jonas"),
        tags: &["import", "data"],
        opened: "2026-11-03",
    },
];

/// Looks up a support ticket by its id (like `T-1001`).
#[skill(title = "Look up a ticket", read_only, open_world = false, tags = ["tickets"])]
pub fn ticket_lookup(
    /// The ticket id, like `T-1001` (case-insensitive).
    ticket_id: String,
    store: State<TicketStore>,
) -> Result<Ticket, SkillError> {
    let wanted = ticket_id.trim();
    store
        .tickets
        .iter()
        .find(|ticket| ticket.id.eq_ignore_ascii_case(wanted))
        .cloned()
        .ok_or_else(|| {
            let known: Vec<_> = store.tickets.iter().map(|ticket| ticket.id).collect();
            SkillError::new(format!("no ticket `{wanted}`; known tickets: {}", known.join(", ")))
        })
}

/// What to search tickets for; every given filter must match.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct TicketQuery {
    /// Words that must all appear in the title or tags (case-insensitive).
    pub text: Option<String>,
    /// Only tickets with this status.
    pub status: Option<TicketStatus>,
    /// Only tickets assigned to this person; `""` finds unassigned tickets.
    pub assignee: Option<String>,
    /// At most this many tickets, 1 to 50 (default 10), newest first.
    #[schemars(range(min = 1, max = 50))]
    pub limit: Option<u32>,
}

/// Searches support tickets by words, status and assignee, newest first.
#[skill(name = "ticket_search", title = "Search tickets", read_only, open_world = false, tags = ["tickets"])]
pub fn search_tickets(#[skill(input)] query: TicketQuery, store: State<TicketStore>) -> Vec<Ticket> {
    // `limit` is 1 to 50: the catalog checks every call against the schema before the skill runs.
    let limit = query.limit.unwrap_or(DEFAULT_SEARCH_RESULTS);
    let words: Vec<String> = query
        .text
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let mut found: Vec<Ticket> = store
        .tickets
        .iter()
        .filter(|ticket| query.status.is_none_or(|status| ticket.status == status))
        .filter(|ticket| match query.assignee.as_deref().map(str::trim) {
            None => true,
            Some("") => ticket.assignee.is_none(),
            Some(who) => ticket
                .assignee
                .is_some_and(|assignee| assignee.eq_ignore_ascii_case(who)),
        })
        .filter(|ticket| {
            let haystack = format!("{} {}", ticket.title, ticket.tags.join(" ")).to_lowercase();
            words.iter().all(|word| haystack.contains(word.as_str()))
        })
        .cloned()
        .collect();
    found.sort_by(|a, b| b.opened.cmp(a.opened));
    found.truncate(limit as usize);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State<TicketStore> {
        State::new(TicketStore::sample())
    }

    #[test]
    fn lookup_is_case_insensitive_and_lists_ids_when_missing() {
        assert_eq!(
            ticket_lookup(" t-1004 ".into(), sample()).unwrap().title,
            "Password reset email never arrives"
        );
        let error = ticket_lookup("T-9".into(), sample()).unwrap_err().to_string();
        assert_eq!(
            error,
            "no ticket `T-9`; known tickets: T-1001, T-1002, T-1003, T-1004, T-1005, T-1006"
        );
    }

    #[test]
    fn search_combines_filters_newest_first() {
        let query = TicketQuery {
            text: Some("DATA".into()),
            status: Some(TicketStatus::InProgress),
            ..TicketQuery::default()
        };
        let ids: Vec<_> = search_tickets(query, sample()).iter().map(|t| t.id).collect();
        assert_eq!(ids, ["T-1006", "T-1002"]);

        let unassigned = TicketQuery {
            assignee: Some(String::new()),
            ..TicketQuery::default()
        };
        let ids: Vec<_> = search_tickets(unassigned, sample()).iter().map(|t| t.id).collect();
        assert_eq!(ids, ["T-1001"]);
    }

    #[test]
    fn search_returns_at_most_its_limit() {
        let two = TicketQuery {
            limit: Some(2),
            ..TicketQuery::default()
        };
        assert_eq!(search_tickets(two, sample()).len(), 2);
    }
}
