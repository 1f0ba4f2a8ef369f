# Real hosts (issue 8): what the host specs (spec/host_*_spec.lua) need before they run.
# nginx's Lua module, LÖVE and Neovim all run LuaJIT, so they load the LuaJIT build (build/luajit).
# The hosts are installed one group at a time and may fail to install (no network, an architecture
# without LÖVE): their specs then go pending with the reason. The LuaJIT core itself must build.
HOST_DEBS_nginx  = nginx-light libnginx-mod-http-lua lua-resty-core curl
HOST_DEBS_love   = love
HOST_DEBS_neovim = neovim
.PHONY: hosts-prep
hosts-prep:
	@sh .ci/deps luajit2 libluajit2-5.1-dev
	@for host in nginx love neovim; do \
	  case $$host in nginx) debs="$(HOST_DEBS_nginx)";; love) debs="$(HOST_DEBS_love)";; \
	    neovim) debs="$(HOST_DEBS_neovim)";; esac; \
	  sh .ci/deps $$debs || echo "txaio: could not install $$debs; the $$host host spec will be pending" >&2; \
	done
	@$(MAKE) --no-print-directory all LUA=luajit
