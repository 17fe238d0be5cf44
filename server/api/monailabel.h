/* monailabel.h: the subset of the MONAI Label protocol that 3D Slicer's "MONAI Label" module
 * uses for automatic segmentation, served under --monailabel-prefix (routes.c names the
 * routes by the default prefix, /monailabel; http.h maps the configured one).
 *
 *   GET  {p}/auth/                 whether auth is on ({"enabled": ...})
 *   POST {p}/auth/token            form username (token name) + password (the token) -> bearer
 *   GET  {p}/auth/token/valid      200 for a valid token
 *   GET  {p}/info/                 labels, every registered model (promoted first), datastore
 *   GET  {p}/train/                404: no MONAI Label training task ever runs here
 *   PUT  {p}/datastore/?image=N    multipart params + file: stores the NIfTI under the name N
 *   POST {p}/infer/MODEL?image=N   multipart answer (params JSON + <basename>.nrrd label map)
 *
 * Labels are the class indices 1..7 in the order of vol_class_names (background 0), under the
 * same names in /info/'s labels, each model's labels and the answer's label_names. Errors carry
 * {"detail": message} next to mkdseg's error object (HTTP_DETAIL). None of these answers waits
 * for the engine but infer. */
#ifndef MKDSEG_MONAILABEL_H
#define MKDSEG_MONAILABEL_H

#include "http.h"

void ml_auth(http_req *r);
void ml_auth_token(http_req *r);
void ml_auth_token_valid(http_req *r);
void ml_info(http_req *r);
void ml_train_status(http_req *r);
void ml_datastore_put(http_req *r);
void ml_infer(http_req *r);

#endif
