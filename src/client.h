/*
 * The HTTP connections of one worker, as seen beside libmicrohttpd: each
 * connection's socket sits in the worker's epoll (edge-triggered) for its
 * whole life, to notice a client that hangs up while its request is
 * suspended (MHD does not) and the first byte of a request's headers, so
 * that the headers get a deadline and connections waiting for theirs
 * take at most half the slots. One thread.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <gnutls/abstract.h>
#include <microhttpd.h>

#include "list.h"
#include "loop.h"
#include "random.h"
#include "services.h"

struct fpg_request;
struct fpg_clients;
struct fpg_tls;

struct fpg_client {
	struct fpg_evsrc ev;	  /* the epoll callback finds us */
	struct fpg_clients *set;
	int fd;
	bool hung_up;		  /* the peer closed (or half-closed) */
	struct fpg_request *req;  /* the request being served, or NULL */
	/* linked while waiting for a request's headers: from accept, or
	 * from the first byte after a keep-alive pause */
	struct fpg_fifo_link pending;
	/* linked from its socket's EPOLLIN edge to the end of the loop turn
	 * when that edge may be stale (see client_event) */
	struct fpg_fifo_link unsure;
	uint64_t active_turn;	  /* last loop turn a request began or ended */
	/* the pair its TLS handshake used (a reference, released when the
	 * connection closes: GnuTLS keeps pointing into it), or NULL */
	struct fpg_tls *tls;
};

struct fpg_clients {
	struct fpg_services *svc;
	struct fpg_fifo pending; /* of fpg_client.pending */
	struct fpg_fifo unsure;	 /* of fpg_client.unsure */
	/* The peer of a connection serving req hung up. */
	void (*hung_up)(struct fpg_request *req);
	/* The connection serving req is closed: its client is gone. */
	void (*closed)(struct fpg_request *req);
	/* ids for the answers of connections cut before a request began */
	struct fpg_random random;
};

void fpg_clients_init(struct fpg_clients *cs, struct fpg_services *svc,
		      void (*hung_up)(struct fpg_request *req),
		      void (*closed)(struct fpg_request *req));

/* MHD's connection notifications (cls: the fpg_clients). */
void fpg_clients_notify(void *cls, struct MHD_Connection *conn,
			void **socket_context,
			enum MHD_ConnectionNotificationCode toe);

/*
 * MHD's certificate callback (MHD_OPTION_HTTPS_CERT_CALLBACK, run in
 * the worker's thread by the handshake): the worker's current pair
 * (svc->tls), which the connection keeps for its life.
 */
int fpg_clients_pick_cert(gnutls_session_t session,
			  const gnutls_datum_t *req_ca_rdn, int nreqs,
			  const gnutls_pk_algorithm_t *pk_algos,
			  int pk_algos_length, gnutls_pcert_st **pcert,
			  unsigned int *pcert_length, gnutls_privkey_t *pkey);

/* The client of a request that MHD has begun (req) or finished (NULL). */
void fpg_client_serve(struct fpg_client *cl, struct fpg_request *req);

/*
 * After MHD_run(): for the connections whose socket had bytes just after
 * a request, decides whether they are a new request's start (see
 * client_event in client.c).
 */
void fpg_clients_settle(struct fpg_clients *cs);

/* Closes the connections that took longer than header-timeout-ms for a
 * request's headers (the worker's tick). */
void fpg_clients_tick(struct fpg_clients *cs);

/*
 * Ends a connection from outside libmicrohttpd's callbacks with a short
 * JSON answer (status, reason phrase, error code and message); id is the
 * request's, or NULL while there is none yet.
 */
void fpg_client_cut(struct fpg_client *cl, const char *id, int status,
		    const char *reason, const char *code, const char *msg);
