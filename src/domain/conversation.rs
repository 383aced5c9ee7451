//! The conversation state an agent keeps on its session (the ElizaOS guide's stage, intent,
//! sentiment, engagement and confidence): validated once, on the way in, and merged field by
//! field.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

/// Where the conversation is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    #[default]
    Greeting,
    Discovery,
    Engaged,
    Resolution,
    Closing,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Greeting,
        Stage::Discovery,
        Stage::Engaged,
        Stage::Resolution,
        Stage::Closing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Greeting => "greeting",
            Stage::Discovery => "discovery",
            Stage::Engaged => "engaged",
            Stage::Resolution => "resolution",
            Stage::Closing => "closing",
        }
    }

    pub fn parse(text: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Sentiment {
    Positive,
    Neutral,
    Negative,
    Mixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Engagement {
    High,
    Medium,
    Low,
}

/// At most this many intents, each at most [`INTENT_MAX_CHARS`] characters.
pub const INTENTS_MAX: usize = 20;
pub const INTENT_MAX_CHARS: usize = 200;

/// A session's conversation state. Fields never set are left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationState {
    pub stage: Stage,
    /// What the user wants, most likely first (at most 20, each ≤ 200 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 20)]
    pub intents: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentiment: Option<Sentiment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engagement: Option<Engagement>,
    /// The agent's confidence, from 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1)]
    pub confidence: Option<f64>,
}

/// A validated change: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatePatch {
    pub stage: Option<Stage>,
    pub intents: Option<Option<Vec<String>>>,
    pub sentiment: Option<Option<Sentiment>>,
    pub engagement: Option<Option<Engagement>>,
    pub confidence: Option<Option<f64>>,
}

/// One field's value before and after a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub before: Value,
    pub after: Value,
}

impl ConversationState {
    /// Where every session starts: `{stage: "greeting"}`.
    pub fn is_initial(&self) -> bool {
        *self == Self::default()
    }

    /// Applies `patch` and returns the fields that changed (camelCase names), in field order.
    pub fn merge(&mut self, patch: StatePatch) -> Vec<(String, FieldChange)> {
        let before = self.fields();
        if let Some(stage) = patch.stage {
            self.stage = stage;
        }
        if let Some(v) = patch.intents {
            self.intents = v;
        }
        if let Some(v) = patch.sentiment {
            self.sentiment = v;
        }
        if let Some(v) = patch.engagement {
            self.engagement = v;
        }
        if let Some(v) = patch.confidence {
            self.confidence = v;
        }
        let after = self.fields();
        ["stage", "intents", "sentiment", "engagement", "confidence"]
            .into_iter()
            .filter_map(|name| {
                let b = before.get(name).cloned().unwrap_or(Value::Null);
                let a = after.get(name).cloned().unwrap_or(Value::Null);
                (a != b).then(|| {
                    (
                        name.to_owned(),
                        FieldChange {
                            before: b,
                            after: a,
                        },
                    )
                })
            })
            .collect()
    }

    fn fields(&self) -> Map<String, Value> {
        match json!(self) {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_reports_only_what_changed() {
        let mut state = ConversationState::default();
        let changes = state.merge(StatePatch {
            stage: Some(Stage::Engaged),
            sentiment: Some(Some(Sentiment::Positive)),
            engagement: Some(None),
            ..Default::default()
        });
        let names: Vec<_> = changes.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["stage", "sentiment"]);
        assert_eq!(changes[0].1.before, json!("greeting"));
        assert_eq!(changes[1].1.before, Value::Null);
        assert!(state.merge(StatePatch::default()).is_empty());
        let cleared = state.merge(StatePatch {
            sentiment: Some(None),
            ..Default::default()
        });
        assert_eq!(cleared[0].1.after, Value::Null);
        assert_eq!(state.sentiment, None);
    }
}
