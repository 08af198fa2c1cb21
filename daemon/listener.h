#ifndef TD_LISTENER_H_
#define TD_LISTENER_H_

#include "conn.h"

int listener_start(struct td_daemon *d, struct td_listener *l, const struct cfg_listener *cfg);
void listener_close(struct td_listener *l);
void listener_try_accept(struct td_listener *l);

#endif
