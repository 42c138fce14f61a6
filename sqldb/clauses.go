package sqldb

import "amavisgo/conf"

// defaultClauses are the statements of amavis's %sql_clause (Amavis::Conf), with ? for the
// arguments in amavis's order; sites override them by name through sql_clause.
var defaultClauses = map[string]string{
	"sel_policy": "SELECT users.*, policy.*, users.id FROM users LEFT JOIN policy ON users.policy_id=policy.id" +
		" WHERE users.email IN (%k) ORDER BY users.priority DESC",
	"sel_wblist": "SELECT wb FROM wblist JOIN mailaddr ON wblist.sid=mailaddr.id" +
		" WHERE wblist.rid=? AND mailaddr.email IN (%k) ORDER BY mailaddr.priority DESC",
	"sel_adr": "SELECT id FROM maddr WHERE partition_tag=? AND email=?",
	"ins_adr": "INSERT INTO maddr (partition_tag, email, domain) VALUES (?,?,?)",
	"ins_msg": "INSERT INTO msgs (partition_tag, mail_id, secret_id, am_id, time_num, time_iso, sid," +
		" policy, client_addr, size, host) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
	"upd_msg": "UPDATE msgs SET content=?, quar_type=?, quar_loc=?, dsn_sent=?, spam_level=?," +
		" message_id=?, from_addr=?, subject=?, client_addr=?, originating=?" +
		" WHERE partition_tag=? AND mail_id=?",
	"ins_rcp": "INSERT INTO msgrcpt (partition_tag, mail_id, rseqnum, rid, is_local, content, ds, rs," +
		" bl, wl, bspam_level, smtp_resp) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
	"ins_quar": "INSERT INTO quarantine (partition_tag, mail_id, chunk_ind, mail_text) VALUES (?,?,?,?)",
	"sel_msg":  "SELECT partition_tag FROM msgs WHERE mail_id=?",
	"sel_quar": "SELECT mail_text FROM quarantine WHERE partition_tag=? AND mail_id=? ORDER BY chunk_ind",
}

// clause is the statement name of configuration g ("" when the site disabled it).
func clause(g *conf.SQLGlobal, name string) string {
	return g.Clause(name, defaultClauses[name])
}
