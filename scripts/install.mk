# scripts/install.mk - installs what goes with the daemon: the QEMU
# vhost-user back-end description, the systemd units and the libvirt
# guest example.  BSD-3-Clause.
#
# Included by the Makefile, which defines PROG, PREFIX, BINDIR, DATADIR,
# SYSTEMDDIR and DESTDIR; `make install` and `make uninstall` call the
# targets below.  @BINDIR@ in the templates becomes $(BINDIR), the path
# the binary has once installed (without DESTDIR).  The files are made at
# install time, not kept in build/, so that a later install with another
# PREFIX never gets a stale path.

VHOST_USER_JSON =	50-$(PROG).json
VHOST_USER_DIR =	$(DATADIR)/qemu/vhost-user
SYSTEMD_UNITS =		$(PROG)@.service $(PROG)@.socket
SUBST_BINDIR =		sed -e 's|@BINDIR@|$(BINDIR)|g'
# Examples, installed as they are in scripts/.
DOCDIR ?=		$(DATADIR)/doc/$(PROG)
DOC_EXAMPLES =		libvirt-guest.xml

install-extra:
	install -d $(DESTDIR)$(VHOST_USER_DIR) $(DESTDIR)$(SYSTEMDDIR) \
	    $(DESTDIR)$(DOCDIR)
	$(SUBST_BINDIR) scripts/$(VHOST_USER_JSON).in \
	    > $(DESTDIR)$(VHOST_USER_DIR)/$(VHOST_USER_JSON)
	chmod 644 $(DESTDIR)$(VHOST_USER_DIR)/$(VHOST_USER_JSON)
	$(SUBST_BINDIR) scripts/systemd/$(PROG)@.service.in \
	    > $(DESTDIR)$(SYSTEMDDIR)/$(PROG)@.service
	chmod 644 $(DESTDIR)$(SYSTEMDDIR)/$(PROG)@.service
	install -m 644 scripts/systemd/$(PROG)@.socket \
	    $(DESTDIR)$(SYSTEMDDIR)/$(PROG)@.socket
	install -m 644 $(DOC_EXAMPLES:%=scripts/%) $(DESTDIR)$(DOCDIR)

uninstall-extra:
	rm -f $(DESTDIR)$(VHOST_USER_DIR)/$(VHOST_USER_JSON)
	rm -f $(SYSTEMD_UNITS:%=$(DESTDIR)$(SYSTEMDDIR)/%)
	rm -f $(DOC_EXAMPLES:%=$(DESTDIR)$(DOCDIR)/%)
	rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true

.PHONY: install-extra uninstall-extra
