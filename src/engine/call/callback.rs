//! Callbacks (RFC 7090; issue 5, point 7): an operator takes the next item of the callback
//! worklist with the `next_callback` feature code, and siaga calls the caller back.
//!
//! PLACEHOLDER. This file belongs to the callbacks work, which replaces it; only the entry
//! point exists here, so that the feature codes (`call::feature`) can reach it. Its
//! signature is fixed: `take_callback(&mut self, now: Now, operator: &str, invite:
//! InboundFeatureCall) -> ()`. The caller has authenticated `operator` (the digest
//! username, equal to the From user) and created the INVITE's server transaction; nothing
//! has been answered yet. `take_callback` owns the INVITE: it must answer it (through
//! `Engine::refuse_feature_call`, or a 2xx on `invite.tx`) or keep it to bridge later.
//! While it keeps it unanswered, a CANCEL gets 487 from `call::feature`
//! (`Engine::on_feature_cancel`); `self.server.is_pending_invite(invite.tx)` tells whether
//! the INVITE still awaits an answer.

use super::feature::InboundFeatureCall;
use crate::engine::driver::Engine;
use crate::engine::time::Now;

impl Engine {
    /// `operator` dialled `next_callback` (INVITE `invite`, unanswered). Placeholder:
    /// answers 480 Temporarily Unavailable with a Warning "callbacks not built yet".
    // The explicit `-> ()` is the signature agreed with the callbacks work.
    #[allow(clippy::unused_unit)]
    pub(crate) fn take_callback(
        &mut self,
        now: Now,
        operator: &str,
        invite: InboundFeatureCall,
    ) -> () {
        tracing::info!(operator, "next_callback: callbacks not built yet: 480");
        let warning = self.warning(399, "callbacks not built yet");
        self.refuse_feature_call(
            now,
            &invite,
            (480, "Temporarily Unavailable"),
            &[("Warning", warning)],
        );
    }
}
