// Package health runs molecule-operator's Argo CD health checks the way Argo CD runs a check
// configured in argocd-cm, and computes kstatus (what Flux uses) for the same object.
package health

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

// The statuses Argo CD accepts from a health script; anything else becomes Unknown.
var validStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

// InvalidHealthStatus is the message Argo CD gives when a script returns a status it does not know.
const InvalidHealthStatus = "Lua returned an invalid health status"

// Timeout is how long Argo CD lets a health script run.
const Timeout = time.Second

// Result is a health status and its message.
type Result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// NewState is the Lua state of an argocd-cm health check without useOpenLibs: package, base and
// table only (Argo CD also loads a reduced os library; these scripts do not use it). No string,
// no math.
func NewState() *lua.LState {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			panic(err)
		}
	}
	return l
}

// RunLua runs a health script on obj (an object decoded from JSON) as Argo CD does: the object is
// the global `obj`, the script must return a table {status, message}, an unknown status becomes
// Unknown, and the script is stopped after Timeout.
func RunLua(obj map[string]any, script string) (Result, error) {
	l := NewState()
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return Result{}, err
	}
	ret := l.Get(-1)
	if ret.Type() != lua.LTTable {
		return Result{}, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	raw, err := luajson.Encode(ret)
	if err != nil {
		return Result{}, err
	}
	var r Result
	if err := json.Unmarshal(raw, &r); err != nil {
		return Result{}, err
	}
	if !validStatuses[r.Status] {
		return Result{Status: "Unknown", Message: InvalidHealthStatus}, nil
	}
	return r, nil
}

// toLua converts an unstructured value to Lua the way Argo CD does: maps become tables, arrays
// 1-indexed tables, numbers (float64 or int64) LNumber, null nil.
func toLua(l *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case int:
		return lua.LNumber(x)
	case int32:
		return lua.LNumber(x)
	case string:
		return lua.LString(x)
	case json.Number:
		return lua.LString(x)
	case []any:
		t := l.CreateTable(len(x), 0)
		for _, item := range x {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(x))
		for k, item := range x {
			t.RawSetH(lua.LString(k), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}
