import { Counter, Gauge, Registry } from 'prom-client';

/** A peer's /metrics: where its bytes came from, what it served, what failed. */
export class PeerMetrics {
  readonly registry = new Registry();
  readonly bytesIn = new Counter({ name: 'sampan_p2p_peer_bytes_received_total', help: 'Blob bytes received, by source (peer or upstream)', labelNames: ['source'], registers: [this.registry] });
  readonly bytesOut = new Counter({ name: 'sampan_p2p_peer_bytes_served_total', help: 'Piece bytes served to other peers', registers: [this.registry] });
  readonly piecesServed = new Counter({ name: 'sampan_p2p_peer_pieces_served_total', help: 'Pieces served to other peers', registers: [this.registry] });
  readonly busy = new Counter({ name: 'sampan_p2p_peer_busy_answers_total', help: 'Piece requests refused because all upload slots were busy', registers: [this.registry] });
  readonly declined = new Counter({ name: 'sampan_p2p_peer_pieces_declined_total', help: 'Piece requests a seed pointed elsewhere because the piece went out already (super-seeding)', registers: [this.registry] });
  readonly failures = new Counter({ name: 'sampan_p2p_peer_piece_failures_total', help: 'Pieces that failed, by reason', labelNames: ['reason'], registers: [this.registry] });
  readonly tasks = new Gauge({ name: 'sampan_p2p_peer_active_tasks', help: 'Blobs being downloaded', registers: [this.registry] });
  readonly backToSource = new Counter({ name: 'sampan_p2p_peer_back_to_source_total', help: 'Blobs (or their rest) fetched from the upstream by a peer that is not the seed', registers: [this.registry] });
  readonly clientBytes = new Counter({ name: 'sampan_p2p_peer_client_bytes_total', help: 'Blob bytes sent to the local runtime', registers: [this.registry] });
}
