// Package proto is the recon plugin protocol: the gRPC services in
// plugin.proto (generated code committed next to it), the go-plugin
// handshake both sides must agree on, and the plugin map.
//
// It is a module of its own with few dependencies so that plugin authors
// (through plugins/sdk) do not pull the agent's. Hosts and plugins both
// import it; nothing here starts processes or keeps state.
package proto

// The generated code is regenerated with `make proto` (pinned
// protoc-gen-go and protoc-gen-go-grpc, Debian's protoc).

import (
	"context"
	"errors"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// ProtocolVersion is the newest application protocol version (go-plugin's
// "app protocol version", the second field of the handshake line). A new
// version is added next to the old one in VersionedPlugins, so hosts and
// plugins negotiate the newest both know.
const ProtocolVersion = 1

// MagicCookieKey and MagicCookieValue are not a security measure: they
// make a plugin binary started by hand say that it is a plugin instead of
// waiting for a handshake.
const (
	MagicCookieKey   = "RECON_PLUGIN_MAGIC_COOKIE"
	MagicCookieValue = "2f0c8a4e6d1b4f3a9c7e5b1d0a8f6e4c-recon-plugin"
)

// Plugin names in the plugin map; a binary serves one of them.
const (
	CheckPluginName = "check"
	SinkPluginName  = "sink"
)

// Handshake returns the go-plugin handshake config shared by host and
// plugins. It is a function, not a variable, so no one can change it for
// everyone.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   MagicCookieKey,
		MagicCookieValue: MagicCookieValue,
	}
}

// HostPlugins is the versioned plugin map for a host: each protocol
// version the host speaks, with client-side plugin implementations.
func HostPlugins() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		1: {CheckPluginName: &CheckPlugin{}, SinkPluginName: &SinkPlugin{}},
	}
}

// ServeCheck returns the versioned plugin map a check plugin serves.
func ServeCheck(impl CheckServer) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{1: {CheckPluginName: &CheckPlugin{Impl: impl}}}
}

// ServeSink returns the versioned plugin map a sink plugin serves.
func ServeSink(impl SinkServer) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{1: {SinkPluginName: &SinkPlugin{Impl: impl}}}
}

var errNoImpl = errors.New("proto: plugin served without an implementation")

// CheckPlugin is the go-plugin glue for the Check service: on the plugin
// side it registers Impl, on the host side it returns a CheckClient.
type CheckPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl CheckServer
}

func (p *CheckPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errNoImpl
	}
	RegisterCheckServer(s, p.Impl)
	return nil
}

func (p *CheckPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewCheckClient(c), nil
}

// SinkPlugin is the go-plugin glue for the Sink service.
type SinkPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl SinkServer
}

func (p *SinkPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errNoImpl
	}
	RegisterSinkServer(s, p.Impl)
	return nil
}

func (p *SinkPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewSinkClient(c), nil
}

var (
	_ plugin.GRPCPlugin = (*CheckPlugin)(nil)
	_ plugin.GRPCPlugin = (*SinkPlugin)(nil)
)
