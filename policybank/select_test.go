package policybank

import (
	"net/netip"
	"testing"

	"amavisgo/conf"
)

const banks = `
inet_socket_port = [10024, 10026]
mynetworks = ["127.0.0.0/8", "10.0.0.0/8", "!192.168.1.66", "192.168.1.0/24"]
log_level = 1
final_virus_destiny = "D_DISCARD"
[interface_policy]
"10026" = "ORIGINATING"
"127.0.0.2:10030" = "BYADDR"
"SOCK" = "AM.PDP-SOCK"
[policy_bank.ORIGINATING]
originating = true
final_virus_destiny = "D_REJECT"
[policy_bank.MYNETS]
log_level = 2
[policy_bank.BYADDR]
log_level = 5
[policy_bank."AM.PDP-SOCK"]
protocol = "AM.PDP"
`

func TestSelect(t *testing.T) {
	cfg, err := conf.Parse("banks.toml", []byte(banks))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		port        string
		client      string
		path        string
		originating bool
		logLevel    int
		virus       conf.Destiny
	}{
		{"XFORWARD ADDR inside mynetworks loads MYNETS", "10024", "10.1.2.3", "MYNETS", true, 2, conf.D_DISCARD},
		{"outside mynetworks stays in the base bank", "10024", "198.51.100.7", "", false, 1, conf.D_DISCARD},
		{"a negated entry excludes the host", "10024", "192.168.1.66", "", false, 1, conf.D_DISCARD},
		{"the rest of its subnet is in", "10024", "192.168.1.67", "MYNETS", true, 2, conf.D_DISCARD},
		{"IPv4-mapped IPv6 is the IPv4 address", "10024", "::ffff:10.9.9.9", "MYNETS", true, 2, conf.D_DISCARD},
		{"port 10026 loads ORIGINATING", "10026", "198.51.100.7", "ORIGINATING", true, 1, conf.D_REJECT},
		{"ORIGINATING then MYNETS nest", "10026", "127.0.0.1", "ORIGINATING/MYNETS", true, 2, conf.D_REJECT},
		{"addr:port key after the port", "127.0.0.2:10030", "198.51.100.7", "BYADDR", false, 5, conf.D_DISCARD},
		{"a port key wins over addr:port", "127.0.0.1:10026", "198.51.100.7", "ORIGINATING", true, 1, conf.D_REJECT},
		{"unknown client counts as 0.0.0.0", "10024", "", "", false, 1, conf.D_DISCARD},
		{"unix socket: SOCK", "/var/lib/amavis/amavisd.sock", "", "AM.PDP-SOCK", false, 1, conf.D_DISCARD},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ip netip.Addr
			if tc.client != "" {
				ip = netip.MustParseAddr(tc.client)
			}
			p, err := Select(cfg, tc.port, ip)
			if err != nil {
				t.Fatal(err)
			}
			if p.PolicyBankPath != tc.path || p.Originating != tc.originating || p.LogLevel != tc.logLevel || p.FinalVirusDestiny != tc.virus {
				t.Errorf("got path %q originating %v log_level %d virus %v; want %q %v %d %v",
					p.PolicyBankPath, p.Originating, p.LogLevel, p.FinalVirusDestiny, tc.path, tc.originating, tc.logLevel, tc.virus)
			}
		})
	}
	if cfg.PolicyBankPath != "" || cfg.Originating || cfg.FinalVirusDestiny != conf.D_DISCARD {
		t.Error("selection changed the base policy")
	}
}

// Without a MYNETS bank, clients in mynetworks are not originating (Amavis.pm's load_policy_bank).
func TestNoMynetsBankNoOriginating(t *testing.T) {
	cfg, err := conf.Parse("a.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Select(cfg, "10024", netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if p != &cfg.Policy || p.Originating {
		t.Errorf("got %q originating=%v, want the base policy", p.PolicyBankPath, p.Originating)
	}
}

func TestClientIPAddrPolicy(t *testing.T) {
	cfg, err := conf.Parse("a.toml", []byte(`
[[client_ipaddr_policy]]
ip = ["!10.9.0.0/16", "10.0.0.0/8"]
banks = "MYNETS, INTERNAL"
[[client_ipaddr_policy]]
ip = ["10.9.0.0/16"]
banks = "LAB"
[policy_bank.MYNETS]
log_level = 2
[policy_bank.INTERNAL]
log_level = 3
[policy_bank.LAB]
[policy_bank.EMPTY]
client_ipaddr_policy = []
[policy_bank.PAIRS]
client_ipaddr_policy = [[["127.0.0.1"], "LAB"]]
[policy_bank.ONE]
[[policy_bank.ONE.client_ipaddr_policy]]
banks = "LAB"
`))
	if err != nil {
		t.Fatal(err)
	}
	for client, want := range map[string]string{
		"10.1.2.3": "MYNETS/INTERNAL", "10.9.1.1": "LAB", "127.0.0.1": "", "192.0.2.1": "",
	} {
		p, err := Select(cfg, "10024", netip.MustParseAddr(client))
		if err != nil {
			t.Fatal(err)
		}
		if p.PolicyBankPath != want || (want == "MYNETS/INTERNAL") != (p.Originating && p.LogLevel == 3) {
			t.Errorf("%s: path %q originating %v log_level %d; want %q", client, p.PolicyBankPath, p.Originating, p.LogLevel, want)
		}
	}
	if len(cfg.ClientIPAddrPolicy) != 2 || cfg.ClientIPAddrPolicy[0].Banks != "MYNETS, INTERNAL" {
		t.Errorf("base list %+v", cfg.ClientIPAddrPolicy)
	}
	empty, _ := cfg.Bank(&cfg.Policy, "EMPTY")
	if p, _ := ForClient(cfg, empty, netip.MustParseAddr("127.0.0.1")); p != empty {
		t.Errorf("an empty client_ipaddr_policy loads nothing, got %q", p.PolicyBankPath)
	}
	pairs, _ := cfg.Bank(&cfg.Policy, "PAIRS")
	if p, _ := ForClient(cfg, pairs, netip.MustParseAddr("127.0.0.1")); p.PolicyBankPath != "PAIRS/LAB" {
		t.Errorf("the pair form: %q", p.PolicyBankPath)
	}
	// a bank's list replaces the base's without writing into it; no ip means mynetworks
	one, err := cfg.Bank(&cfg.Policy, "ONE")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := ForClient(cfg, one, netip.MustParseAddr("127.0.0.1")); p.PolicyBankPath != "ONE/LAB" {
		t.Errorf("ONE: %q", p.PolicyBankPath)
	}
	if cfg.ClientIPAddrPolicy[0].Banks != "MYNETS, INTERNAL" || len(cfg.ClientIPAddrPolicy[0].IP.Strings()) != 2 {
		t.Errorf("a bank changed the base list: %+v", cfg.ClientIPAddrPolicy)
	}
}

// Select returns the policy for a message received on the listening socket port from client
// (XFORWARD ADDR when the MTA sent one, else the peer's address; the zero Addr when unknown).
// port is the listening port ("10026"), an "addr:port" pair, or a Unix socket path. The result
// is cached by cfg and must not be modified.
func Select(cfg *conf.Config, port string, client netip.Addr) (*conf.Policy, error) {
	p, err := ForSocket(cfg, port)
	if err != nil {
		return nil, err
	}
	return ForClient(cfg, p, client)
}
