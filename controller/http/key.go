package http

import (
	"context"
	"fmt"

	"loaxa.vn/protocol"
)

// trustedKeys are the controller keys written into credentials documents.
func (s *Server) trustedKeys(ctx context.Context) ([]protocol.PublicKey, error) {
	if s.KeyService == nil {
		return s.ControllerKeys, nil
	}
	keys, err := s.KeyService.TrustedKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("trusted keys: %w", err)
	}
	return keys, nil
}
