//! What the ACD is configured with: its queues (strategy, login policy, ring timeout,
//! wrap-up, no-answer limit, reject delay, skills widening, overflow), the trunk routing
//! rules that put a call in a queue with required skills and a base priority, the
//! operators' queues, skills and wrap-up, the repeat-caller window and the feature codes.
//!
//! Plain data, built and validated by `crate::config` from `[queue]`, `[[queues]]`,
//! `[[routes]]`, `[acd]`, `[feature_codes]` and `[[operators]]`; the ACD trusts it (names
//! unique, every referenced queue defined, at least one queue).

use std::time::Duration;

/// How a queue picks among the operators who may take a call (`queues[].strategy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// `longest-idle` (the default): the operator available for the longest time.
    #[default]
    LongestIdle,
    /// `round-robin`: the next operator after the one last offered a call of this queue,
    /// in operator-id order.
    RoundRobin,
    /// `ring-all`: every operator who may take the call rings at once; the first 200
    /// wins, the others are CANCELled.
    RingAll,
    /// `skills`: the operator whose skills fit the call most narrowly (fewest skills
    /// beyond those required), so that operators with rare skills stay free for calls
    /// that need them; ties go to the longest idle.
    Skills,
}

impl Strategy {
    /// The configuration word: `longest-idle`, `round-robin`, `ring-all`, `skills`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Strategy::LongestIdle => "longest-idle",
            Strategy::RoundRobin => "round-robin",
            Strategy::RingAll => "ring-all",
            Strategy::Skills => "skills",
        }
    }

    /// The strategy a configuration word names.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Strategy::LongestIdle,
            Strategy::RoundRobin,
            Strategy::RingAll,
            Strategy::Skills,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// How operators of a queue log in (`queues[].login`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LoginPolicy {
    /// `on-register` (the default): a phone's first binding makes its operator available,
    /// so a plain softphone works out of the box.
    #[default]
    OnRegister,
    /// `explicit`: a registered operator stays logged out until they log in with the
    /// `ready` feature code (or the API of a later issue).
    Explicit,
}

impl LoginPolicy {
    /// The configuration word: `on-register`, `explicit`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LoginPolicy::OnRegister => "on-register",
            LoginPolicy::Explicit => "explicit",
        }
    }

    /// The policy a configuration word names.
    pub fn from_name(name: &str) -> Option<Self> {
        [LoginPolicy::OnRegister, LoginPolicy::Explicit]
            .into_iter()
            .find(|p| p.as_str() == name)
    }
}

/// Where a queue diverts calls it cannot serve (a neighbouring centre).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overflow {
    /// `queues[].overflow_uri`: the backup destination's SIP URI (IP literal host).
    pub uri: String,
    /// `queues[].overflow_after_s`: a call waiting this long overflows; also the pause
    /// before a call whose overflow failed is diverted again.
    pub after: Duration,
    /// `queues[].overflow_ring_timeout_s`: how long the backup leg may ring.
    pub ring_timeout: Duration,
}

/// One queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSettings {
    /// `queues[].name`: unique, recorded with each call (`queued` event).
    pub name: String,
    /// `queues[].strategy`.
    pub strategy: Strategy,
    /// `queues[].login`.
    pub login: LoginPolicy,
    /// `queues[].ring_timeout_s`: how long an operator's phone rings.
    pub ring_timeout: Duration,
    /// `queues[].wrap_up_s`: wrap-up after each call (0: none); an operator's
    /// `operators[].wrap_up_s` overrides it.
    pub wrap_up: Duration,
    /// `queues[].no_answer_limit`: consecutive unanswered offers after which an operator
    /// goes not ready (`no_answer`); 0 never.
    pub no_answer_limit: u32,
    /// `queues[].reject_retry_delay_s`: after an operator rejects (486, 603 …), how long they are
    /// not offered any call.
    pub reject_delay: Duration,
    /// `queues[].widen_after_s`: a call needing skills that waited this long may go to any
    /// operator of the queue; `None`: never widens.
    pub widen_after: Option<Duration>,
    /// `queues[].overflow_*`: the backup destination, if any.
    pub overflow: Option<Overflow>,
}

impl QueueSettings {
    /// A queue named `name` with the defaults of `[queue]`: longest-idle, on-register,
    /// ring 15 s, wrap-up 10 s, 2 no-answers, reject delay 5 s, no widening, no overflow.
    pub fn named(name: &str) -> Self {
        QueueSettings {
            name: name.to_owned(),
            strategy: Strategy::LongestIdle,
            login: LoginPolicy::OnRegister,
            ring_timeout: Duration::from_secs(15),
            wrap_up: Duration::from_secs(10),
            no_answer_limit: 2,
            reject_delay: Duration::from_secs(5),
            widen_after: None,
            overflow: None,
        }
    }
}

/// A trunk routing rule (`[[routes]]`): calls to one of `numbers` go to `queue`, needing
/// `skills`, at `priority` at least.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// `routes[].numbers`: numbers matched against the number first dialled (a call
    /// diverted from a 110 or 113 desk) and then the number called, without visual
    /// separators.
    pub numbers: Vec<String>,
    /// `routes[].queue`: a queue name.
    pub queue: String,
    /// `routes[].skills`: skills an operator needs for these calls, until they widen.
    pub skills: Vec<String>,
    /// `routes[].priority`: the calls' base priority (0–255, higher first).
    pub priority: u8,
}

/// One operator's ACD settings (`[[operators]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSettings {
    /// `operators[].id`.
    pub id: String,
    /// `operators[].queues`: the queues served; empty: every queue.
    pub queues: Vec<String>,
    /// `operators[].skills` (e.g. languages: `id`, `en`, `minang`).
    pub skills: Vec<String>,
    /// `operators[].wrap_up_s`: overrides the queue's wrap-up.
    pub wrap_up: Option<Duration>,
}

impl AgentSettings {
    /// Operator `id` serving every queue, without skills.
    pub fn plain(id: &str) -> Self {
        AgentSettings {
            id: id.to_owned(),
            queues: Vec::new(),
            skills: Vec::new(),
            wrap_up: None,
        }
    }
}

/// The numbers operators dial to change their state (`[feature_codes]`), each an INVITE
/// Request-URI user part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureCodes {
    /// `feature_codes.ready` (default `*70`): log in / become available.
    pub ready: String,
    /// `feature_codes.not_ready` (default `*71`): not ready (reason `requested`).
    pub not_ready: String,
    /// `feature_codes.end_wrap_up` (default `*72`).
    pub end_wrap_up: String,
    /// `feature_codes.next_callback` (default `*73`): take the oldest callback.
    pub next_callback: String,
    /// `feature_codes.logout` (default `*74`).
    pub logout: String,
}

impl Default for FeatureCodes {
    fn default() -> Self {
        FeatureCodes {
            ready: "*70".to_owned(),
            not_ready: "*71".to_owned(),
            end_wrap_up: "*72".to_owned(),
            next_callback: "*73".to_owned(),
            logout: "*74".to_owned(),
        }
    }
}

/// Everything the ACD is configured with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcdSettings {
    /// `[[queues]]` (at least one; without any in the file, one queue `112` with the
    /// `[queue]` defaults). The first is where calls no route matches go.
    pub queues: Vec<QueueSettings>,
    /// `[[routes]]`, first match wins.
    pub routes: Vec<Route>,
    /// `[[operators]]`.
    pub agents: Vec<AgentSettings>,
    /// `acd.repeat_window_s` (default 600): a caller whose previous call was abandoned or
    /// dropped this recently is raised one priority level and flagged as a repeat call.
    pub repeat_window: Duration,
    /// `acd.callback_window_h` (default 24 h): abandoned calls this recent are rebuilt onto
    /// the callback worklist at start.
    pub callback_window: Duration,
    /// `acd.callback_ring_timeout_s` (default 30): how long a callback rings the caller.
    pub callback_ring_timeout: Duration,
    /// `acd.transfer_ring_timeout_s` (default 30): how long a field agency's transfer URI
    /// rings before the transfer is given up and the operator keeps the caller.
    pub transfer_ring_timeout: Duration,
    /// `[feature_codes]`.
    pub feature_codes: FeatureCodes,
}

impl AcdSettings {
    /// One queue `112` with the defaults, served by `operators` (plain), repeat window
    /// 10 min, callback window 24 h, callback and transfer ring 30 s, default feature codes.
    pub fn single_queue<'a>(operators: impl IntoIterator<Item = &'a str>) -> Self {
        AcdSettings {
            queues: vec![QueueSettings::named("112")],
            routes: Vec::new(),
            agents: operators.into_iter().map(AgentSettings::plain).collect(),
            repeat_window: Duration::from_secs(600),
            callback_window: Duration::from_secs(24 * 3600),
            callback_ring_timeout: Duration::from_secs(30),
            transfer_ring_timeout: Duration::from_secs(30),
            feature_codes: FeatureCodes::default(),
        }
    }
}
