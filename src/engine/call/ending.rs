//! Dialogs siaga is ending with its own BYE, and the races around them (RFC 3261 §15).
//!
//! A call ends at once in the call model (the other leg gets its BYE, the operator is
//! free), but a dialog siaga sent a BYE in still exists until that BYE's transaction ends
//! (§15.1.1: the dialog is terminated by the BYE's final response; siaga keeps it until
//! the transaction is gone, Timer K over UDP, so a BYE that crossed ours is still
//! recognised). Meanwhile:
//! - a BYE from the peer in that dialog — both sides hung up at once — draws 200
//!   (§15.1.2: it matches an existing dialog), not 481;
//! - any other request in it draws 481, as in a dialog that is gone.
//!
//! Once the transaction ended, the dialog is unknown and every request in it draws 481
//! (§12.2.2), from the driver.

use crate::engine::dialog::DialogKey;
use crate::engine::driver::Engine;
use crate::engine::sip::{Method, SipMessage};
use crate::engine::transaction::ClientTxId;

impl Engine {
    /// siaga sent BYE transaction `tx` in dialog `key`: the dialog lasts until `tx` ends.
    pub(super) fn bye_sent(&mut self, key: DialogKey, tx: ClientTxId) {
        self.calls.byes.insert(tx, key);
    }

    /// Client transaction `tx` ended: if it was one of siaga's BYEs, its dialog is gone.
    pub(super) fn bye_ended(&mut self, tx: ClientTxId) {
        self.calls.byes.remove(&tx);
    }

    /// A request in dialog `key`, which no live call holds: 200 to a BYE when siaga's own
    /// BYE in that dialog is still under way (the two crossed), else `None` (the driver
    /// answers 481).
    pub(super) fn on_ending_dialog_request(
        &self,
        key: &DialogKey,
        msg: &SipMessage,
    ) -> Option<(u16, &'static str)> {
        let crossed =
            msg.method() == Some(&Method::Bye) && self.calls.byes.values().any(|k| k == key);
        crossed.then_some((200, "OK"))
    }
}
