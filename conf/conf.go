// Package conf is amavisgo's configuration model: one struct tree, spelled with amavis's variable
// names (without the sigil) and carrying amavis's defaults, loaded from TOML.
//
// Settings that amavis lets a policy bank override live in Policy; process-wide settings live in
// Global. A policy bank is a TOML table under [policy_bank.NAME] holding any Policy key; loading a
// bank overlays its keys on the current Policy (see Config.Bank).
package conf

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
)

// Config is a loaded configuration file.
type Config struct {
	Global
	Policy // the base policy bank, ''

	// PolicyBanks are kept undecoded so that each load overlays only the keys the bank names.
	PolicyBanks map[string]toml.Primitive `toml:"policy_bank"`

	File  string        `toml:"-"`
	md    toml.MetaData // needed to decode PolicyBanks later
	text  []byte
	mu    sync.Mutex // serializes PrimitiveDecode, which writes to md
	banks sync.Map   // bank path ("ORIGINATING/MYNETS") -> *Policy
}

// Error is a configuration error that names where it is: file, line (0 when unknown) and key.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": key %q", e.Key)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Default returns the configuration with amavis's defaults and no file.
func Default() *Config {
	c := &Config{}
	c.Global.setDefaults()
	c.Policy.setDefaults()
	return c
}

// Parse is Load for text already in memory; file names the text in errors.
func Parse(file string, text []byte) (*Config, error) {
	c := Default()
	c.File = file
	c.text = text
	md, err := toml.NewDecoder(bytes.NewReader(text)).Decode(c)
	if err != nil {
		return nil, c.decodeError(err)
	}
	c.md = md
	for _, k := range md.Undecoded() {
		if k[0] != "policy_bank" && !insideArray(md, k) { // bank keys are checked with the bank
			return nil, c.errorAt(k.String(), "unknown setting")
		}
	}
	c.Global.resolve()
	if err := c.validate(); err != nil {
		return nil, err
	}
	// Every bank is decoded once now, so that a broken bank fails the load, not a later message.
	names := make([]string, 0, len(c.PolicyBanks))
	for name := range c.PolicyBanks {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, err := c.Bank(&c.Policy, name); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// insideArray reports whether key lies inside an array value: a type that decodes itself from
// an array of inline tables (a lookup table list) leaves those keys marked undecoded.
func insideArray(md toml.MetaData, key toml.Key) bool {
	for i := 1; i < len(key); i++ {
		if md.Type(key[:i]...) == "Array" {
			return true
		}
	}
	return false
}

var decodeErrRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

// decodeError turns the TOML library's errors into Errors with file, line and key.
func (c *Config) decodeError(err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{File: c.File, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
	}
	if m := decodeErrRE.FindStringSubmatch(err.Error()); m != nil {
		line := 0
		fmt.Sscan(m[1], &line)
		return &Error{File: c.File, Line: line, Key: m[2], Msg: m[3]}
	}
	var ce *Error
	if errors.As(err, &ce) {
		if ce.File == "" {
			ce.File = c.File
		}
		if ce.Line == 0 && ce.Key != "" {
			ce.Line = c.keyLine(ce.Key)
		}
		return ce
	}
	return &Error{File: c.File, Msg: err.Error()}
}

// errorAt builds an Error for a dotted key, finding its line in the file text.
func (c *Config) errorAt(key, msg string) *Error {
	return &Error{File: c.File, Line: c.keyLine(key), Key: key, Msg: msg}
}

// keyLine finds the line that sets a dotted key ("policy_bank.MYNETS.log_level"), following
// [table] headers; 0 when it cannot be found (a default, or an inline table).
func (c *Config) keyLine(key string) int {
	parts := strings.Split(key, ".")
	for split := len(parts) - 1; split >= 0; split-- {
		table := strings.Join(parts[:split], ".")
		leaf := parts[split]
		current := ""
		for i, line := range strings.Split(string(c.text), "\n") {
			t := strings.TrimSpace(line)
			if strings.HasPrefix(t, "[") {
				current = strings.Trim(strings.SplitN(t, "#", 2)[0], "[] \t")
				continue
			}
			if current != table {
				continue
			}
			k, _, ok := strings.Cut(t, "=")
			if ok && strings.Trim(strings.TrimSpace(k), `"'`) == leaf {
				return i + 1
			}
		}
		if split == len(parts)-1 && table != "" {
			continue // the key may be a table header itself: [policy_bank.X]
		}
	}
	for i, line := range strings.Split(string(c.text), "\n") {
		if strings.Trim(strings.TrimSpace(line), "[]") == key {
			return i + 1
		}
	}
	return 0
}

// validate checks values that TOML types cannot: ranges, method syntax, cross-field rules.
func (c *Config) validate() error {
	if err := c.Global.validate(); err != nil {
		return c.located(err)
	}
	if err := c.Policy.validate(); err != nil {
		return c.located(err)
	}
	return nil
}

// located fills in file and line of an *Error raised by a validate method.
func (c *Config) located(err error) error {
	var ce *Error
	if errors.As(err, &ce) {
		ce.File = c.File
		if ce.Line == 0 {
			ce.Line = c.keyLine(ce.Key)
		}
		return ce
	}
	return &Error{File: c.File, Msg: err.Error()}
}

// invalid is the error a validate method returns; Config.located adds file and line.
func invalid(key, format string, args ...any) error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Bank returns the policy that results from loading bank name on top of cur, as amavis does when
// it loads a policy bank: only the keys the bank names change. Loading a bank that does not exist
// returns cur unchanged (amavis ignores it silently). Results are cached per bank path.
func (c *Config) Bank(cur *Policy, name string) (*Policy, error) {
	prim, ok := c.PolicyBanks[name]
	if !ok {
		return cur, nil
	}
	path := name
	if cur.PolicyBankPath != "" {
		path = cur.PolicyBankPath + "/" + name
	}
	if p, ok := c.banks.Load(path); ok {
		return p.(*Policy), nil
	}
	p := cur.clone()
	c.mu.Lock()
	err := c.md.PrimitiveDecode(prim, p)
	undecoded := c.md.Undecoded()
	c.mu.Unlock()
	if err != nil {
		return nil, c.decodeError(err)
	}
	for _, k := range undecoded {
		if strings.HasPrefix(k.String(), "policy_bank."+name+".") && !insideArray(c.md, k) {
			return nil, c.errorAt(k.String(), "unknown setting in policy bank "+name)
		}
	}
	if err := p.validate(); err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			ce.Key = "policy_bank." + name + "." + ce.Key
		}
		return nil, c.located(err)
	}
	p.PolicyBankPath = path
	// Loading a bank named MYNETS makes the mail originating, as Amavis.pm's load_policy_bank does.
	if name == "MYNETS" {
		p.Originating = true
	}
	c.banks.Store(path, p)
	return p, nil
}
