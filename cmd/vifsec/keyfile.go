package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// Manual SA keys (`sa add`): --encryption-key KEY and --integrity-key KEY
// are esxcli's flags and keep working, but a key on the command line is
// visible to every user of the host in /proc/PID/cmdline (ps) and stays
// in shell history, so using them prints a warning. --encryption-key-file
// and --integrity-key-file read the key, in the same syntax (0x-hex or
// ASCII text), from a file holding it on one line, or from stdin with -
// (a prompt without echo on a terminal; else one line each, the
// encryption key's first when both are -).

// maxKeyFile bounds a key file: the longest key is 36 bytes, 74 in hex.
const maxKeyFile = 4096

// saKeys returns the keys sa add sends. A flag given both ways is a usage
// error (usage true); a file that cannot be used is a rejection.
func (c *cli) saKeys(in *invocation) (enc, integ string, usage bool, err error) {
	var stdin *bufio.Reader
	get := func(flag string) (string, bool, error) {
		file := flag + "-file"
		if in.has(flag) && in.has(file) {
			return "", true, fmt.Errorf("--%s and --%s exclude each other: give the key one way (the file keeps it off the command line)", flag, file)
		}
		if in.has(flag) {
			if in.get(flag) != "" {
				c.warn([]string{fmt.Sprintf("--%s: a key on the command line is visible to every user of this host (ps, /proc/PID/cmdline) and stays in shell history; prefer --%s FILE, or --%s - to read it from stdin", flag, file, file)})
			}
			return in.get(flag), false, nil
		}
		if !in.has(file) {
			return "", false, nil
		}
		path := in.get(file)
		if path == "-" {
			if stdin == nil {
				stdin = bufio.NewReaderSize(io.LimitReader(c.stdin, 2*maxKeyFile), maxKeyFile)
			}
			k, err := c.readKeyStdin(stdin, flag)
			return k, false, err
		}
		k, err := readKeyFile(path, "--"+file)
		if err == nil {
			if fi, serr := os.Stat(path); serr == nil && fi.Mode().Perm()&0o077 != 0 {
				c.warn([]string{fmt.Sprintf("--%s %s is readable by other users (mode %04o); chmod 600 it", file, path, fi.Mode().Perm())})
			}
		}
		return k, false, err
	}
	if enc, usage, err = get("encryption-key"); err != nil {
		return "", "", usage, err
	}
	integ, usage, err = get("integrity-key")
	return enc, integ, usage, err
}

// readKeyFile reads a key from path: one line (a final newline is not
// part of the key); flag names the file's flag in errors.
func readKeyFile(path, flag string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	defer clear(b)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", flag, path, err)
	}
	if len(b) > maxKeyFile {
		return "", fmt.Errorf("%s %s: longer than %d bytes; the file must hold only the key (0x-hex or text) on one line", flag, path, maxKeyFile)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("%s %s: more than one line; the file must hold only the key (0x-hex or text) on one line", flag, path)
	}
	if s == "" {
		return "", fmt.Errorf("%s %s: empty; the file must hold the key (0x-hex or text) on one line", flag, path)
	}
	return s, nil
}

// readKeyStdin reads the key of --flag from stdin: a prompt without echo
// on a terminal, else the next line of r.
func (c *cli) readKeyStdin(r *bufio.Reader, flag string) (string, error) {
	if fd, ok := isTerminal(c.stdin); ok {
		fmt.Fprintf(c.stderr, "Enter the %s (0x-hex or text): ", strings.ReplaceAll(flag, "-", " "))
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(c.stderr)
		defer clear(b)
		if err != nil {
			return "", fmt.Errorf("--%s-file -: reading the terminal: %w", flag, err)
		}
		if len(b) == 0 {
			return "", fmt.Errorf("--%s-file -: empty key; nothing changed", flag)
		}
		return string(b), nil
	}
	line, err := r.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("--%s-file -: reading stdin: %w", flag, err)
	}
	if len(line) > maxKeyFile {
		return "", fmt.Errorf("--%s-file -: the line on stdin is longer than %d bytes", flag, maxKeyFile)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", fmt.Errorf("--%s-file -: no key on stdin; give it as one line (with both key files -, the encryption key's line first)", flag)
	}
	return line, nil
}
