package api

import wire "github.com/vifsec/vifsec/api"

// The wire types, owned by the public package; the server and its parsers
// use them under their names here. Responses are aliases.
type (
	Added                    = wire.Added
	CACertificatesAddRequest = wire.CACertificatesAddRequest
	CRL                      = wire.CRL
	CRLAddRequest            = wire.CRLAddRequest
	Certificate              = wire.Certificate
	Config                   = wire.Config
	Error                    = wire.Error
	ErrorBody                = wire.ErrorBody
	FDBEntry                 = wire.FDBEntry
	FleetHost                = wire.FleetHost
	FleetStatus              = wire.FleetStatus
	FleetVM                  = wire.FleetVM
	Health                   = wire.Health
	IKESA                    = wire.IKESA
	IPsecSA                  = wire.IPsecSA
	List                     = wire.List
	MoveRequest              = wire.MoveRequest
	Offload                  = wire.Offload
	Policy                   = wire.Policy
	PolicyRekeyRequest       = wire.PolicyRekeyRequest
	Rekeyed                  = wire.Rekeyed
	Removed                  = wire.Removed
	SA                       = wire.SA
	SAStats                  = wire.SAStats
	SP                       = wire.SP
	SPI                      = wire.SPI
	NullString               = wire.NullString
	Stats                    = wire.Stats
	Tenant                   = wire.Tenant
	Unprotected              = wire.Unprotected
	Uplink                   = wire.Uplink
	UDPGSOStats              = wire.UDPGSOStats
	UplinkStats              = wire.UplinkStats
	VM                       = wire.VM
	Value                    = wire.Value
	VersionInfo              = wire.VersionInfo
)

// Requests are types of their own, with the wire type's fields and JSON
// names, so that this package can give them the methods that parse them
// into the daemon's domain types (Parse, Edit).
type (
	CertificateInstallRequest wire.CertificateInstallRequest
	ConfigModifyRequest       wire.ConfigModifyRequest
	FDBAddRequest             wire.FDBAddRequest
	PolicyCreateRequest       wire.PolicyCreateRequest
	PolicyModifyRequest       wire.PolicyModifyRequest
	SAAddRequest              wire.SAAddRequest
	SPAddRequest              wire.SPAddRequest
	TenantAddRequest          wire.TenantAddRequest
	UplinkSetRequest          wire.UplinkSetRequest
	VMAttachRequest           wire.VMAttachRequest
)
