// Package libvirtexample holds the libvirt example (README.md, domain.xml)
// and the test that keeps domain.xml what the README says it is.
package libvirtexample
