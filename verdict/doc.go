// Package verdict turns what decoding and scanning found into what amavis decides per recipient
// (Amavis.pm's check_mail and add_forwarding_header_edits_per_recip): content categories, the
// blocking category and destiny, the SMTP reply of a blocked recipient, the header edits of a
// passed one, and the parts of the main log line that depend on the verdict.
//
// How the daemon uses it, step by step:
//
//  1. Policy: policybank.ForSocket(cfg, localPort) when the connection is accepted, then
//     policybank.ForClient(cfg, p, client) per transaction, client = XFORWARD ADDR, else the
//     peer.
//  2. One Recipient per RCPT, its smtp.Recipient filled in; checks := Plan(p, recipients).
//     Decode (unpack) when checks.Decode; scan for viruses when checks.Virus and the
//     decoding put nothing on hold (Result.Hold == "").
//     With spam engines configured, ask them (package spam) unless every recipient bypasses
//     spam checks or AllListed says the sender lists decide for all, and pass what they said
//     as Input.Spam (nil without engines: no spam phase, no X-Spam-* fields, Hits "-").
//  3. v, err := Decide(Input{Recipients: recipients, ...}) fills in each record's decision;
//     v.Recips are the same records. An error (a banned rule out of time) is a 451 with
//     section "check-banned". v.Tempfail, when set, is the 451 reply for the whole message
//     (virus_scanners_failure_is_fatal); nothing is forwarded then. Log v.Notes at level 2.
//  4. Quarantine by v.CCats / v.Blocking before forwarding (a quarantine failure is a 451).
//  5. Every recipient with !r.Blocked is forwarded. Its copy's header: edits :=
//     v.HeaderEdits(r, mailID, quarantined); then edits.Prepend() (the added fields in
//     order), amavis's Received, edits.EditHeader(original header section) (fields of
//     edits.Delete removed, Subject tagged), the empty line and the original body.
//     Recipients whose edits have equal Key() share a transaction, with the first one's edits.
//     The forwarder sets r.Reply (and r.ByMTA, r.Remote) from the next hop's answer.
//  6. A recipient the next hop refused: v.NextHopFailed(r) rewrites r.Reply.
//  7. A blocked recipient's reply is r.Reply; D_BOUNCE (and D_REJECT of a partial SMTP
//     reject) sends a DSN unless r.DSNSuppress says why not.
//  8. The main log line: "Passed " / "Blocked " + v.LogCategory() + " " +
//     Actions(words, "Quarantined"...), words[i] = ActionWord(r, p.Originating).
package verdict
