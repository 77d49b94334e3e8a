package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryFlagDocumented holds flagdoc.go to the verb table: every verb
// says what it does and every flag what it means and accepts.
func TestEveryFlagDocumented(t *testing.T) {
	for _, v := range verbTable() {
		if verbDocs[v.name()] == "" {
			t.Errorf("verb %q has no entry in verbDocs", v.name())
		}
		for _, f := range v.flags {
			d, ok := docFor(v, f.name)
			if !ok || d.meaning == "" || d.values == "" {
				t.Errorf("vifsec %s --%s: no documentation (meaning and values) in flagDocs", v.name(), f.name)
			}
		}
	}
	for name := range verbFlagDocs {
		if findVerb(verbTable(), strings.Fields(name)) == nil {
			t.Errorf("verbFlagDocs documents %q, which is not a verb", name)
		}
	}
}

// TestVerbHelp: `vifsec VERB --help` prints, for every verb, its usage,
// what it does, and each of its flags with required/optional.
func TestVerbHelp(t *testing.T) {
	for _, v := range verbTable() {
		var out, errb bytes.Buffer
		args := append(append([]string{}, v.words...), "--help")
		if code := run(args, &out, &errb); code != exitOK {
			t.Fatalf("vifsec %s --help: exit %d: %s", v.name(), code, errb.String())
		}
		help := out.String()
		if !strings.HasPrefix(help, "usage: vifsec "+v.name()) || !strings.Contains(help, verbDocs[v.name()]) {
			t.Errorf("vifsec %s --help lacks its usage or description:\n%s", v.name(), help)
		}
		for _, f := range v.flags {
			if !strings.Contains(help, "\n  --"+f.name) {
				t.Errorf("vifsec %s --help does not list --%s", v.name(), f.name)
			}
		}
		if len(v.flags) > 0 && !strings.Contains(help, "required") && !strings.Contains(help, "optional") {
			t.Errorf("vifsec %s --help says nothing of required or optional:\n%s", v.name(), help)
		}
	}
	var out, errb bytes.Buffer
	run([]string{"sa", "add", "--help"}, &out, &errb)
	for _, want := range []string{"--sa-mode transport|tunnel", "(required)", "--replay-window 32-4096", "default 1024", "one of --vm, --tenant is required"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("vifsec sa add --help lacks %q:\n%s", want, out.String())
		}
	}
}

// TestVerbGroup: a verb group alone lists its commands instead of calling
// the command unknown.
func TestVerbGroup(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"sa"}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "vifsec sa add") || !strings.Contains(errb.String(), "vifsec sa remove") {
		t.Errorf("vifsec sa: exit %d, stderr %q", code, errb.String())
	}
	out.Reset()
	if code := run([]string{"overlay", "fdb", "--help"}, &out, &errb); code != exitOK || !strings.Contains(out.String(), "vifsec overlay fdb list") {
		t.Errorf("vifsec overlay fdb --help: exit %d, stdout %q", code, out.String())
	}
	errb.Reset()
	if code := run([]string{"frobnicate"}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "unknown command") {
		t.Errorf("vifsec frobnicate: exit %d, stderr %q", code, errb.String())
	}
}

// TestCompletion loads the generated scripts in bash (and zsh where it is
// installed) and completes verbs, flags and flag values.
func TestCompletion(t *testing.T) {
	dir := t.TempDir()
	for _, sh := range []string{"bash", "zsh"} {
		var out, errb bytes.Buffer
		if code := run([]string{"completion", sh}, &out, &errb); code != exitOK || out.Len() == 0 {
			t.Fatalf("vifsec completion %s: exit %d, %s", sh, code, errb.String())
		}
		os.WriteFile(filepath.Join(dir, sh), out.Bytes(), 0o644)
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed")
	}
	script := `source "$1"
t() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _vifsec; echo "${COMPREPLY[*]}"; }
t vifsec sa ""
t vifsec sa add --sa-mode ""
t vifsec sa add --sa-s
t vifsec --format json add --action ""
t vifsec completion ""
`
	out, err := exec.Command("bash", "-c", script, "bash", filepath.Join(dir, "bash")).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	want := "add list remove\ntransport tunnel\n--sa-source --sa-spi\nnone discard ipsec\nbash zsh\n"
	if string(out) != want {
		t.Errorf("bash completions:\n%s\nwant:\n%s", out, want)
	}
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Log("zsh not installed: the zsh script was generated but not loaded")
		return
	}
	zscript := `autoload -U compinit; compinit -u -d "$2/zcompdump"; source "$1"
compadd() { shift; print -r -- "${cands[*]}"; }
words=(vifsec sa add --sa-mode ""); CURRENT=5; _vifsec
words=(vifsec policy ""); CURRENT=3; _vifsec
`
	out, err = exec.Command("zsh", "-f", "-c", zscript, "zsh", filepath.Join(dir, "zsh"), dir).CombinedOutput()
	if err != nil {
		t.Fatalf("zsh: %v\n%s", err, out)
	}
	if want := "transport tunnel\ncreate modify show rekey delete\n"; string(out) != want {
		t.Errorf("zsh completions:\n%s\nwant:\n%s", out, want)
	}
}

// TestManPage: the page lists every verb and flag and renders.
func TestManPage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--man"}, &out, &errb); code != exitOK {
		t.Fatalf("vifsec --man: exit %d %s", code, errb.String())
	}
	page := out.String()
	for _, v := range verbTable() {
		if !strings.Contains(page, ".B vifsec "+strings.ReplaceAll(v.name(), "-", `\-`)) {
			t.Errorf("man page lacks vifsec %s", v.name())
		}
		for _, f := range v.flags {
			if !strings.Contains(page, `.B \-\-`+strings.ReplaceAll(f.name, "-", `\-`)) {
				t.Errorf("man page lacks --%s", f.name)
			}
		}
	}
	if _, err := exec.LookPath("man"); err == nil {
		cmd := exec.Command("man", "-l", "-")
		cmd.Stdin = strings.NewReader(page)
		if r, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(r), "SYNOPSIS") {
			t.Errorf("man -l: %v\n%s", err, r)
		}
	}
}

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--version"}, &out, &errb); code != exitOK || !strings.HasPrefix(out.String(), "vifsec ") {
		t.Errorf("vifsec --version: exit %d %q", code, out.String())
	}
}
