# install.mk: `make install` and `make uninstall` (PREFIX, default /usr/local;
# DESTDIR for staging). The Make and CMake files find the rest of the install
# from their own place; convgen.pc names PREFIX.

PREFIX  ?= /usr/local
DESTDIR ?=
INSTALL ?= install

CONVGEN_VERSION := $(shell sed -n 's/^M\.VERSION = "\([0-9.]*\)"$$/\1/p' gen/convgen/emit.lua)
VERSION_MAJOR    = $(word 1,$(subst ., ,$(CONVGEN_VERSION)))
VERSION_MINOR    = $(word 2,$(subst ., ,$(CONVGEN_VERSION)))

INSTALL_ROOT   = $(DESTDIR)$(PREFIX)
INSTALL_CMAKE  = $(INSTALL_ROOT)/lib/cmake/convgen
INSTALL_SHARE  = $(INSTALL_ROOT)/share/convgen
INSTALLED_FILES = bin/convgen lib/libconvgen.a include/convgen.h include/convgen_npy.h \
                  share/convgen/convgen.mk lib/pkgconfig/convgen.pc \
                  lib/cmake/convgen/convgenConfig.cmake lib/cmake/convgen/convgenConfigVersion.cmake \
                  lib/cmake/convgen/convgen.cmake

# The version and prefix are substituted as the file is installed (PREFIX may
# differ from one install to the next), through a temporary name so a
# failure leaves no half-written file.
install_subst = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(CONVGEN_VERSION)|g' \
                    -e 's|@VERSION_MAJOR@|$(VERSION_MAJOR)|g' -e 's|@VERSION_MINOR@|$(VERSION_MINOR)|g' \
                    $(1) > $(2).tmp && chmod 644 $(2).tmp && mv -f $(2).tmp $(2)

.PHONY: install uninstall check-prefix

check-prefix:
	@case "$(PREFIX)" in /*) ;; *) echo "convgen: PREFIX must be an absolute path, got '$(PREFIX)'" >&2; exit 2 ;; esac
	@test -n "$(CONVGEN_VERSION)" || { echo "convgen: no version found in gen/convgen/emit.lua" >&2; exit 3; }

install: all check-prefix
	$(INSTALL) -d $(INSTALL_ROOT)/bin $(INSTALL_ROOT)/lib $(INSTALL_ROOT)/include \
	  $(INSTALL_ROOT)/lib/pkgconfig $(INSTALL_CMAKE) $(INSTALL_SHARE)
	$(INSTALL) -m 755 $(BIN)/convgen $(INSTALL_ROOT)/bin/convgen
	$(INSTALL) -m 644 $(BUILD)/libconvgen.a $(INSTALL_ROOT)/lib/libconvgen.a
	$(INSTALL) -m 644 include/convgen.h include/convgen_npy.h $(INSTALL_ROOT)/include/
	$(INSTALL) -m 644 tools/install/convgen.mk $(INSTALL_SHARE)/convgen.mk
	$(INSTALL) -m 644 tools/install/convgenConfig.cmake tools/install/convgen.cmake $(INSTALL_CMAKE)/
	$(call install_subst,tools/install/convgenConfigVersion.cmake.in,$(INSTALL_CMAKE)/convgenConfigVersion.cmake)
	$(call install_subst,tools/install/convgen.pc.in,$(INSTALL_ROOT)/lib/pkgconfig/convgen.pc)

# Removes exactly what install puts there, and convgen's own directories if empty.
uninstall: check-prefix
	rm -f $(addprefix $(INSTALL_ROOT)/,$(INSTALLED_FILES))
	rmdir $(INSTALL_CMAKE) $(INSTALL_SHARE) 2>/dev/null || true
