package amavis

// decide takes the verdict's per-recipient decisions: a blocked recipient's reply is final.
func (d *Daemon) decide(m *Message) {
	for i, r := range m.Recips {
		vr := m.Verdict.Recips[i]
		r.v = vr
		r.Local = vr.Local
		if vr.Blocked {
			r.Destiny, r.Done = vr.Destiny, true
			r.Reply = vr.Response
		}
	}
}
