//! PLACEHOLDER (replaced by the store helper's version at merge).
use super::UtcTime;
use uuid::Uuid;
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallEvent { pub id: Uuid, pub call: Uuid, pub at: UtcTime, pub kind: CallEventKind }
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallEventKind {
    Received { trunk_call_id: String, caller: Option<String>, called: String, trunk: String },
    Queued,
    Offered { operator: String },
    NoAnswer { operator: String },
    Rejected { operator: String, status: u16 },
    LegFailed { operator: String, reason: String },
    Answered { operator: String },
    Ended { by: Party, disposition: Disposition },
    MediaRelayed { caller_to_operator: u64, operator_to_caller: u64 },
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Party { Caller, Operator, Siaga }
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition { Answered, AbandonedInQueue, AbandonedWhileRinging, Failed }
