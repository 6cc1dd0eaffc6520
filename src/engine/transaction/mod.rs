//! SIP transactions (RFC 3261 §17 as updated by RFC 6026): the four state machines and the
//! table that matches messages to them.
