package main

import (
	"fmt"
	"slices"
	"strings"
)

// The argument parser. It accepts what ESXi's and ONTAP's examples write: --flag value and
// --flag=value; also -flag (ONTAP's spelling). Global flags (--socket,
// --format) may appear anywhere. Verb words come first, then the verb's
// flags. It knows syntax only: values are checked by the daemon, whose
// messages name the flag (exit 1); syntax errors here are usage errors
// (exit 2).

// flagKind says how a flag takes its value.
type flagKind uint8

const (
	flagValue    flagKind = iota + 1 // --f V or --f=V
	flagRepeated                     // like flagValue, may be given more than once
	flagBool                         // --f, or --f=true|false
)

type flagDef struct {
	name     string // without dashes
	kind     flagKind
	required bool
}

// verb is one command of the CLI.
type verb struct {
	words   []string // e.g. {"sa", "add"}
	aliases [][]string
	flags   []flagDef
	// oneOf lists flags of which exactly one must be given.
	oneOf []string
	// synonyms maps an accepted spelling to the flag it means.
	synonyms map[string]string
	// hints explain flags that are known mistakes.
	hints map[string]string
	usage string
	run   func(*cli, *invocation) int
}

func (v *verb) name() string { return strings.Join(v.words, " ") }

func (v *verb) flag(name string) *flagDef {
	if s, ok := v.synonyms[name]; ok {
		name = s
	}
	for i := range v.flags {
		if v.flags[i].name == name {
			return &v.flags[i]
		}
	}
	return nil
}

// invocation is a parsed command line.
type invocation struct {
	verb   *verb
	socket string
	host   string // --host NAME: another fleet host's objects (fleet.go)
	format string // table or json
	help   bool
	vers   bool // --version: print the CLI's version and exit
	man    bool // --man: print the manual page (make install)
	// prefix is set for `vifsec sa --help`: the words of a verb group.
	prefix []string
	values map[string][]string
}

// get returns the value of a value flag, "" if absent.
func (in *invocation) get(name string) string {
	if v := in.values[name]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

func (in *invocation) has(name string) bool { _, ok := in.values[name]; return ok }

// usageError is a command line the CLI cannot make sense of (exit 2).
type usageError struct {
	msg  string
	verb *verb // for its usage line, may be nil
	// sub lists the commands of a verb group given alone (`vifsec sa`).
	sub []*verb
}

func (e *usageError) Error() string { return e.msg }

func usagef(v *verb, format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...), verb: v}
}

// notYet are verbs of docs/cli.md that this version does not have yet.
var notYet = map[string]string{}

var globalFlags = []string{"socket", "format", "host"}

// splitFlag returns the name and inline value of a flag token ("--a=b" →
// "a", "b", true), and ok=false if tok is not a flag.
func splitFlag(tok string) (name, val string, hasVal, ok bool) {
	switch {
	case strings.HasPrefix(tok, "--"):
		tok = tok[2:]
	case strings.HasPrefix(tok, "-") && len(tok) > 1:
		tok = tok[1:]
	default:
		return "", "", false, false
	}
	name, val, hasVal = strings.Cut(tok, "=")
	return name, val, hasVal, name != ""
}

// parseArgs parses the command line (without the program name) against
// the verb table.
func parseArgs(verbs []*verb, args []string) (*invocation, error) {
	in := &invocation{format: "table", values: map[string][]string{}}
	var words []string
	i := 0
	// Global flags and help before the verb words.
	for ; i < len(args); i++ {
		tok := args[i]
		if tok == "--" {
			return nil, usagef(nil, "unexpected %q", tok)
		}
		name, val, hasVal, ok := splitFlag(tok)
		if !ok {
			break
		}
		if name == "help" || name == "h" {
			in.help = true
			continue
		}
		if name == "version" && !hasVal {
			in.vers = true
			continue
		}
		if name == "man" && !hasVal {
			in.man = true
			continue
		}
		if !slices.Contains(globalFlags, name) {
			return nil, usagef(nil, "unknown flag %s before the verb; write the verb first, e.g. vifsec sa add --sa-name ...", tok)
		}
		val, n, err := takeValue(nil, args, i, name, val, hasVal)
		if err != nil {
			return nil, err
		}
		if err := in.setGlobal(name, val); err != nil {
			return nil, err
		}
		i += n
	}
	for ; i < len(args); i++ {
		if strings.HasPrefix(args[i], "-") {
			break
		}
		words = append(words, args[i])
	}
	if len(words) == 0 {
		if in.help || in.vers || in.man {
			return in, nil
		}
		return nil, usagef(nil, "no verb given")
	}
	if words[0] == "help" {
		in.help = true
		words = words[1:]
		if len(words) == 0 {
			return in, nil
		}
	}
	v := findVerb(verbs, words)
	if v == nil && notYet[words[0]] != "" {
		return nil, usagef(nil, "vifsec %s: not implemented in this version (%s)", words[0], notYet[words[0]])
	}
	if v == nil {
		if sub := subVerbs(verbs, words); len(sub) > 0 {
			// A verb group alone (vifsec sa): list its commands.
			if in.help || slices.ContainsFunc(args[i:], func(a string) bool { return a == "--help" || a == "-h" || a == "-help" }) {
				in.help, in.prefix = true, words
				return in, nil
			}
			return nil, &usageError{msg: fmt.Sprintf("%s: which command?", strings.Join(words, " ")), sub: sub}
		}
		return nil, usagef(nil, "unknown command %q", strings.Join(words, " "))
	}
	in.verb = v
	for ; i < len(args); i++ {
		tok := args[i]
		name, val, hasVal, ok := splitFlag(tok)
		if !ok {
			return nil, usagef(v, "unexpected argument %q (flags are written --name value)", tok)
		}
		if name == "help" || name == "h" {
			in.help = true
			continue
		}
		if slices.Contains(globalFlags, name) {
			val, n, err := takeValue(v, args, i, name, val, hasVal)
			if err != nil {
				return nil, err
			}
			if err := in.setGlobal(name, val); err != nil {
				return nil, err
			}
			i += n
			continue
		}
		f := v.flag(name)
		if f == nil {
			if h, ok := v.hints[name]; ok {
				return nil, usagef(v, "vifsec %s: unknown flag --%s: %s", v.name(), name, h)
			}
			return nil, usagef(v, "vifsec %s: unknown flag --%s", v.name(), name)
		}
		if _, seen := in.values[f.name]; seen && f.kind != flagRepeated {
			return nil, usagef(v, "vifsec %s: --%s given more than once", v.name(), f.name)
		}
		if f.kind == flagBool {
			if !hasVal {
				val = "true"
			}
			in.values[f.name] = append(in.values[f.name], val)
			continue
		}
		val, n, err := takeValue(v, args, i, name, val, hasVal)
		if err != nil {
			return nil, err
		}
		in.values[f.name] = append(in.values[f.name], val)
		i += n
	}
	if in.help {
		return in, nil
	}
	for _, f := range v.flags {
		if f.required && !in.has(f.name) {
			return nil, usagef(v, "vifsec %s: missing --%s", v.name(), f.name)
		}
	}
	if len(v.oneOf) > 0 {
		var given []string
		for _, n := range v.oneOf {
			if in.has(n) {
				given = append(given, "--"+n)
			}
		}
		if len(given) != 1 {
			alts := make([]string, len(v.oneOf))
			for i, n := range v.oneOf {
				alts[i] = "--" + n
			}
			return nil, usagef(v, "vifsec %s: give exactly one of %s", v.name(), strings.Join(alts, " or "))
		}
	}
	return in, nil
}

// takeValue returns the value of the flag at args[i] and how many extra
// tokens it consumed: 0 if the value was inline (--f=V), 1 if it is the
// next token.
func takeValue(v *verb, args []string, i int, name, val string, hasVal bool) (string, int, error) {
	if hasVal {
		return val, 0, nil
	}
	if i+1 >= len(args) {
		return "", 0, usagef(v, "--%s needs a value", name)
	}
	if next := args[i+1]; strings.HasPrefix(next, "-") && len(next) > 1 {
		return "", 0, usagef(v, "--%s needs a value, got flag %s (write --%s=VALUE for a value that starts with '-')", name, next, name)
	}
	return args[i+1], 1, nil
}

func (in *invocation) setGlobal(name, val string) error {
	switch name {
	case "socket":
		if val == "" {
			return usagef(nil, "--socket needs a path")
		}
		in.socket = val
	case "host":
		if val == "" {
			return usagef(nil, "--host needs a host name (see vifsec fleet status)")
		}
		in.host = val
	case "format":
		if val != "table" && val != "json" {
			return usagef(nil, "--format: %q is not a format; use table or json", val)
		}
		in.format = val
	}
	return nil
}

// findVerb finds the verb named by the longest prefix of words that names
// one; the remaining words are an error.
func findVerb(verbs []*verb, words []string) *verb {
	for _, v := range verbs {
		for _, w := range append([][]string{v.words}, v.aliases...) {
			if slices.Equal(w, words) {
				return v
			}
		}
	}
	return nil
}
